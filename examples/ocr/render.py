"""Render the data of the OCR examples: printed text lines as the PaddleOCR models of the `rapidocr-onnxruntime`
wheel see them.

Usage::

    python examples/ocr/render.py                  # both sets below, 600 lines each
    python examples/ocr/render.py --task recognition --count 2000 --out /tmp/lines --seed 7

* `recognition` (-> `examples/ocr/lines/recognition/`): text-line crops for the PP-OCRv4 recognizer
  (`ch_PP-OCRv4_rec_infer.onnx`), resized to height 48 and padded to width 320; `labels.tsv` holds each
  file's text, so accuracy is exact match on the rendered strings.
* `orientation` (-> `examples/ocr/lines/orientation/{0,180}/`): crops for the text-direction classifier
  (`ch_ppocr_mobile_v2.0_cls_infer.onnx`), height 48 padded to width 192, upright in `0/` and rotated by 180
  degrees in `180/`.

Each crop is prepared the way PaddleOCR prepares it (aspect-preserving resize, padding on the right in
mid-gray, which is zero after its (x / 255 - 0.5) / 0.5 normalisation), so a folder of them is what the model
sees in production. Text comes from the Zen of Python and numbers; fonts are the DejaVu faces matplotlib
ships. The same seed gives the same images.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import random
import shutil
from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
HEIGHT = 48
WIDTHS = {"recognition": 320, "orientation": 192}
PAD = 128  # mid-gray: 0 after PaddleOCR's normalisation, as its own padding
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf")


def vocabulary() -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen; its rot13 text is `this.s`
        import this

    words = codecs.decode(this.s, "rot13").replace("--", " ").split()
    return sorted({w.strip(".,!*'\"") for w in words} - {""})


def line(rng: random.Random, words: list[str], most: int) -> str:
    parts = [rng.choice(words) for _ in range(rng.randint(1, most))]
    if rng.random() < 0.3:
        parts.insert(rng.randint(0, len(parts)), str(rng.randint(0, 99999)))
    text = " ".join(parts)
    return text.upper() if rng.random() < 0.15 else text.capitalize() if rng.random() < 0.5 else text


def draw(text: str, rng: random.Random, fonts: Path) -> Image.Image:
    """The text on a light background, cropped tight with a margin (a detector's box)."""
    font = ImageFont.truetype(str(fonts / rng.choice(FONTS)), rng.randint(22, 40))
    ink, paper = rng.randint(0, 90), rng.randint(185, 255)
    left, top, right, bottom = font.getbbox(text)
    margin = rng.randint(2, 8)
    crop = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), paper)
    ImageDraw.Draw(crop).text((margin - left, margin - top), text, fill=ink, font=font)
    return crop


def fit(crop: Image.Image, width: int) -> Image.Image:
    """The crop resized to height 48 (aspect kept, at most `width` wide) and padded on the right, like PaddleOCR's
    model input."""
    fitted = min(width, max(1, round(crop.width * HEIGHT / crop.height)))
    canvas = Image.new("L", (width, HEIGHT), PAD)
    canvas.paste(crop.resize((fitted, HEIGHT), Image.Resampling.BILINEAR), (0, 0))
    return canvas.convert("RGB")


def write(task: str, count: int, out: Path, seed: int) -> None:
    rng = random.Random(seed)
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    words, width = vocabulary(), WIDTHS[task]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    labels = []
    for i in range(count):
        if task == "orientation":
            upside_down = i % 2 == 1
            folder = out / ("180" if upside_down else "0")
            folder.mkdir(exist_ok=True)
            crop = draw(line(rng, words, 4), rng, fonts)
            fit(crop.rotate(180) if upside_down else crop, width).save(folder / f"{i:05d}.png")
        else:
            while True:  # a line the crop holds without squeezing it to illegibility
                text = line(rng, words, 3)
                crop = draw(text, rng, fonts)
                if crop.width * HEIGHT <= 1.25 * width * crop.height:
                    break
            fit(crop, width).save(out / f"{i:05d}.png")
            labels.append(f"{i:05d}.png\t{text}")
    if labels:
        (out / "labels.tsv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    print(f"wrote {count} {task} lines to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["recognition", "orientation", "both"], default="both")
    parser.add_argument("--count", type=int, default=600, help="lines per set (orientation: half upside down)")
    parser.add_argument("--out", type=Path, help="output folder (default: examples/ocr/lines/TASK)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = ["recognition", "orientation"] if args.task == "both" else [args.task]
    if args.out is not None and len(tasks) > 1:
        parser.error("--out needs one --task")
    for task in tasks:
        write(task, args.count, args.out or HERE / "lines" / task, args.seed)


if __name__ == "__main__":
    main()
