"""A zoo of outside models (nobody here wrote them) run through exactly what a user types:

    shrink inspect FILE [--shape NAME=...]
    shrink init --model FILE --data PATH --target T [--shape NAME=...] -o recipe.json
    shrink compile recipe.json -o BUNDLE
    shrink verify BUNDLE

    python bench/zoo.py [--only NAME,...] [--count 16] [--workdir DIR]

Models: ONNX files shipped inside pip wheels (PaddleOCR's text detector, recognizer and direction classifier
from `rapidocr-onnxruntime`; Silero VAD from `silero-vad`, `If` subgraphs with state and sample-rate inputs;
ddddocr's Conv+LSTM captcha reader) and transformers architectures built from small configs, random init,
saved with `save_pretrained` (MobileNetV2, ResNet, ViT, MobileViT, BERT-tiny, DistilBERT, RoBERTa). A model
whose package is not installed is skipped, and the table says so.

Data is made here, offline: images drawn with PIL (a flat folder: calibration only), WAV files synthesised
with numpy, text lines. Nothing is downloaded. Each command runs in its own process with `--json`; the table
shows each exit code, the verdict (or the first error line), the int8 share of MACs, the model file's bytes
before and after, and the quantize step's parity with the fp32 model (top-1 agreement for class outputs,
cosine otherwise, as the pass measured it on held-out samples).

The summary line gives the compile rate (goal: >=90% exit 0; no exit 1; no exit 3 from built-in code) and the
conv nets whose int8 MAC share is below 90%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEXT = ["the quick brown fox jumps over the lazy dog", "please turn off the lights in the kitchen",
        "what is the weather like tomorrow morning", "set a timer for ten minutes", "play some quiet music",
        "how far is the station from here", "remind me to call my sister at noon", "open the window a little"]


@dataclass
class Model:
    """One zoo entry: how to get the model file (None with the reason when its package is missing), which data
    a user would point `init` at, the `--shape` pins a user would type, and whether it is a conv net (the MAC
    share goal applies)."""

    name: str
    kind: str
    source: str
    build: Callable[[Path], Path | str]
    data: str
    shape: list[str] = field(default_factory=list)
    target: str = "cortex-a53"
    conv: bool = False
    expect: dict[str, int] = field(default_factory=dict)  # exit codes other than 0, by command, with the reason below
    why: str = ""


def packaged(dist: str, suffix: str) -> Path | str:
    """A file inside an installed distribution, found by its metadata (no import of the package)."""
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        return f"skipped: pip install {dist}"
    for f in files:
        if str(f).endswith(suffix):
            return Path(str(metadata.distribution(dist).locate_file(f)))
    return f"skipped: {dist} has no {suffix}"


def hf_vision(kind: str, **config: Any) -> Callable[[Path], Path | str]:
    def build(out: Path) -> Path | str:
        import torch
        from transformers import AutoConfig, AutoModelForImageClassification

        torch.manual_seed(0)
        cfg = AutoConfig.for_model(kind, num_labels=4, **config)
        AutoModelForImageClassification.from_config(cfg).eval().save_pretrained(out)
        return out
    return build


def hf_text(kind: str, **config: Any) -> Callable[[Path], Path | str]:
    def build(out: Path) -> Path | str:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, BertTokenizerFast

        out.mkdir(parents=True, exist_ok=True)
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w for line in TEXT for w in line.split()})]
        tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, model_max_length=32)
        tokenizer.save_pretrained(out)
        assert len(tokenizer) == len(words) and tokenizer(TEXT[0])["input_ids"].count(1) == 0  # no [UNK]
        torch.manual_seed(0)
        cfg = AutoConfig.for_model(kind, num_labels=3, vocab_size=len(tokenizer), pad_token_id=0, **config)
        AutoModelForSequenceClassification.from_config(cfg).eval().save_pretrained(out)
        return out
    return build


VAD_SHAPES = ["input=1x512", "state=2x1x128"]
def hf_onnx(folder_builder: Callable[[Path], Path | str], text: bool) -> Callable[[Path], Path | str]:
    """A transformers model from a small config exported to ONNX by torch (dynamic batch, and sequence for text),
    as a user who exported their own would hand it over: an .onnx file (with the tokenizer's ids in an .npz)."""
    def build(out: Path) -> Path | str:
        import torch
        from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

        folder = folder_builder(out.with_name("folder"))
        assert isinstance(folder, Path)
        auto = AutoModelForSequenceClassification if text else AutoModelForImageClassification
        model = auto.from_pretrained(folder).eval()
        model.config.return_dict = False
        names = ["input_ids", "attention_mask", "token_type_ids"] if text else ["pixel_values"]
        if text:
            args = tuple(torch.ones((1, 16), dtype=torch.int64) for _ in names)
            axes = {n: {0: "batch", 1: "sequence"} for n in names}
        else:
            args, axes = (torch.rand(1, 3, 64, 64),), {"pixel_values": {0: "batch"}}
        path = out.with_suffix(".onnx")
        torch.onnx.export(model, args, str(path), input_names=names, output_names=["logits"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
        return path
    return build


SMALL_BERT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
              "max_position_embeddings": 64}
ZOO = [
    Model("ppocr-det", "detection", "rapidocr-onnxruntime wheel",
          lambda _: packaged("rapidocr-onnxruntime", "ch_PP-OCRv4_det_infer.onnx"), "images-rgb", ["x=1x3x160x160"],
          conv=True),
    Model("ppocr-rec", "OCR", "rapidocr-onnxruntime wheel",
          lambda _: packaged("rapidocr-onnxruntime", "ch_PP-OCRv4_rec_infer.onnx"), "lines", ["x=1x3x48x320"],
          conv=True),
    Model("ppocr-cls", "OCR direction", "rapidocr-onnxruntime wheel",
          lambda _: packaged("rapidocr-onnxruntime", "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "images-rgb",
          ["x=1x3x48x192"], conv=True),
    Model("silero-vad", "audio, If + state", "silero-vad wheel",
          lambda _: packaged("silero-vad", "data/silero_vad.onnx"), "vad-npz", VAD_SHAPES, expect={"compile": 4},
          why="the analysis cannot size the 8 kHz branch at a 512-sample window (the model itself rejects it), so "
              "RAM and latency cannot be verified: gates fail closed"),
    Model("silero-vad-ifless", "audio, state", "silero-vad wheel",
          lambda _: packaged("silero-vad", "data/silero_vad_op18_ifless.onnx"), "vad-npz", VAD_SHAPES),
    Model("ddddocr", "captcha Conv+LSTM", "ddddocr wheel", lambda _: packaged("ddddocr", "ddddocr/common.onnx"),
          "images-gray", ["input1=1x1x64x128"], conv=True),
    Model("ddddocr-old", "captcha, int8 file", "ddddocr wheel",
          lambda _: packaged("ddddocr", "ddddocr/common_old.onnx"), "images-gray", ["input1=1x1x64x128"]),
    Model("ddddocr-det", "detection", "ddddocr wheel", lambda _: packaged("ddddocr", "ddddocr/common_det.onnx"),
          "images-rgb", conv=True),
    Model("mobilenet_v2", "vision cls", "transformers config",
          hf_vision("mobilenet_v2", image_size=64, depth_multiplier=0.35), "images-rgb", conv=True),
    Model("resnet-18", "vision cls", "transformers config",
          hf_vision("resnet", layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[16, 32, 64, 128],
                    embedding_size=16), "images-rgb", ["pixel_values=1x3x64x64"], conv=True),
    Model("vit", "vision cls", "transformers config",
          hf_vision("vit", image_size=64, patch_size=16, **{k: v for k, v in SMALL_BERT.items()
                                                            if k != "max_position_embeddings"}), "images-rgb"),
    Model("mobilevit", "vision cls", "transformers config",
          hf_vision("mobilevit", image_size=64, hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 16, 24, 24, 32, 40, 160]),
          "images-rgb", conv=True),
    Model("bert-tiny", "text cls", "transformers config", hf_text("bert", **SMALL_BERT), "text"),
    Model("distilbert", "text cls", "transformers config",
          hf_text("distilbert", dim=64, n_layers=2, n_heads=2, hidden_dim=128, max_position_embeddings=64), "text"),
    Model("roberta", "text cls", "transformers config", hf_text("roberta", **SMALL_BERT), "text"),
    Model("bert-tiny-onnx", "text cls", "transformers config, torch.onnx", hf_onnx(hf_text("bert", **SMALL_BERT), True),
          "tokens-npz", [f"{n}=1x16" for n in ("input_ids", "attention_mask", "token_type_ids")]),
    Model("mobilenet_v2-onnx", "vision cls", "transformers config, torch.onnx",
          hf_onnx(hf_vision("mobilenet_v2", image_size=64, depth_multiplier=0.35), False), "images-rgb",
          ["pixel_values=1x3x64x64"], conv=True),
]


def make_data(kind: str, out: Path, count: int) -> Path:
    """The data a user points `init` at, made offline: a flat folder of PNGs, of text-line crops, of WAV files,
    or a text file of lines."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    if kind == "lines":
        subprocess.run([sys.executable, str(REPO / "examples/ocr/render.py"), "--task", "recognition", "--count",
                        str(count), "--out", str(out), "--seed", "5"], check=True, capture_output=True)
        (out / "labels.tsv").unlink()  # a flat folder of images, as a user's crops would be
        return out
    if kind == "tokens-npz":  # what a user's own tokenizer gives for an exported text model: ids, mask, types
        words = sorted({w for line in TEXT for w in line.split()})
        ids = np.zeros((count, 16), np.int64)
        for i in range(count):
            line = [5 + words.index(w) for w in TEXT[i % len(TEXT)].split()][:14]
            ids[i, :len(line) + 2] = [2, *line, 3]  # [CLS] ... [SEP], as hf_text's vocabulary numbers them
        out = out.with_suffix(".npz")
        np.savez(out, input_ids=ids, attention_mask=(ids > 0).astype(np.int64), token_type_ids=np.zeros_like(ids))
        return out
    if kind == "text":
        out.write_text("\n".join(TEXT[i % len(TEXT)] for i in range(max(count, len(TEXT)))) + "\n")
        return out
    if kind == "vad-npz":  # one field per input, named like them: 512-sample windows, a zero state, the rate
        t = np.arange(count * 512) / 16000
        windows = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.arange(t.size) // 2048 % 2)
                   + 0.02 * rng.standard_normal(t.size)).astype(np.float32).reshape(count, 512)
        out = out.with_suffix(".npz")
        np.savez(out, input=windows, state=np.zeros((count, 2, 128), np.float32), sr=np.full(count, 16000, np.int64))
        return out
    out.mkdir(parents=True, exist_ok=True)
    if kind == "wav":
        import wave

        t = np.arange(16000) / 16000
        for i in range(count):
            signal = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
            with wave.open(str(out / f"{i:03d}.wav"), "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
                w.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
        return out
    mode = "L" if kind == "images-gray" else "RGB"
    for i in range(count):
        image = Image.new(mode, (200, 120), tuple(int(v) for v in rng.integers(140, 255, 3))[: len(mode)]
                          if mode == "RGB" else int(rng.integers(140, 255)))
        draw = ImageDraw.Draw(image)
        for j in range(3):
            x, y = (int(v) for v in rng.integers(0, 150, 2))
            draw.text((x, y % 100), f"ab{i}{j} xy", fill=0 if mode == "L" else (0, 0, 0))
            draw.ellipse([x, y % 90, x + 30, y % 90 + 20], outline=int(rng.integers(0, 120)) if mode == "L"
                         else tuple(int(v) for v in rng.integers(0, 120, 3)))
        image.save(out / f"{i:03d}.png")
    return out


Runner = Callable[..., tuple[int, dict[str, Any], str]]


def shrink(*args: str | Path, cwd: Path) -> tuple[int, dict[str, Any], str]:
    """One command as a user runs it, in its own process, with `--json`: exit code, the JSON object, stderr."""
    done = subprocess.run([sys.executable, "-m", "shrink", "--json", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError:
        payload = {}
    return done.returncode, payload, done.stderr


def first_error(payload: dict[str, Any], stderr: str) -> str:
    errors = payload.get("errors") or []
    if errors:
        e = errors[0]
        return f"{e.get('where') or ''}: {e.get('message')}".strip(": ")
    failed = [c for c in payload.get("checks") or [] if not c.get("ok")]
    if failed:
        return f"{failed[0]['name']}: {failed[0].get('cause')}"
    return (stderr.strip().splitlines() or ["?"])[-1]


def run_model(model: Model, work: Path, count: int, runner: Runner = shrink) -> dict[str, Any]:
    """inspect -> init -> compile -> verify for one model; a row of the table. `runner(*args, cwd=...)` runs one
    command (default: a `python -m shrink --json` process)."""
    row: dict[str, Any] = {"model": model.name, "kind": model.kind, "source": model.source, "codes": {},
                           "outcome": "", "mac_share": None, "bytes_before": None, "bytes_after": None,
                           "agreement": None, "conv": model.conv, "seconds": None}
    folder = work / model.name
    folder.mkdir(parents=True, exist_ok=True)
    built = model.build(folder / "model")
    if isinstance(built, str):
        row["outcome"] = built
        return row
    data = make_data(model.data, folder / ("lines.txt" if model.data == "text" else "data"), count)
    shapes = [a for s in model.shape for a in ("--shape", s)]
    steps: list[tuple[str, list[str | Path]]] = [
        ("inspect", ["inspect", built, *shapes]),
        ("init", ["init", "--model", built, "--data", data, "--target", model.target, *shapes, "-o",
                  folder / "recipe.json", "--force"]),
        ("compile", ["compile", folder / "recipe.json", "-o", folder / "bundle"]),
        ("verify", ["verify", folder / "bundle"]),
    ]
    if built.is_dir():  # `inspect` reads ONNX files; a Hugging Face folder is inspected by init's plan
        steps = steps[1:]
    started = time.perf_counter()
    for step, args in steps:
        code, payload, stderr = runner(*args, cwd=folder)
        row["seconds"] = round(time.perf_counter() - started, 1)
        row["codes"][step] = code
        if code != 0:
            row["outcome"] = f"{step}: {first_error(payload, stderr)}"
            break
    else:
        row["outcome"] = "pass"
    row["expected"] = all(row["codes"].get(step, 0) == code for step, code in model.expect.items()) and all(
        code == 0 for step, code in row["codes"].items() if step not in model.expect)
    manifest = folder / "bundle" / "manifest.json"
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        history = record["history"]
        row["bytes_before"] = next((h["metrics"]["model_bytes"] for h in history if h["metrics"].get("model_bytes")),
                                   None)  # the source file, or the fp32 export of a framework model
        row["bytes_after"] = record["metrics"].get("model_bytes")
        by_dtype = record["metrics"].get("macs_by_dtype") or {}
        total = sum(by_dtype.values())
        row["mac_share"] = round(by_dtype.get("int8", 0) / total, 4) if total else None
        for step in history:
            details = step.get("details") or {}
            if step["name"].startswith("quantize"):
                if "parity_top1_agreement" in details:
                    row["agreement"] = f"top-1 {details['parity_top1_agreement']:.3f}"
                elif "parity_cosine" in details:
                    row["agreement"] = f"cos {details['parity_cosine']:.3f}"
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | kind | source | inspect | init | compile | verify | outcome | int8 MACs | bytes before "
             "| bytes after | agreement | s |", "|" + "---|" * 13]
    for r in rows:
        codes = [str(r["codes"].get(s, "-")) for s in ("inspect", "init", "compile", "verify")]
        share = f"{r['mac_share']:.1%}" if r["mac_share"] is not None else "-"
        before = f"{r['bytes_before']:,}" if r["bytes_before"] else "-"
        after = f"{r['bytes_after']:,}" if r["bytes_after"] else "-"
        lines.append(f"| {r['model']} | {r['kind']} | {r['source']} | {' | '.join(codes)} | {r['outcome'][:160]} "
                     f"| {share} | {before} | {after} | {r['agreement'] or '-'} | {r['seconds'] or '-'} |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ran = [r for r in rows if r["codes"]]
    compiled = [r for r in ran if r["codes"].get("compile") == 0]
    codes = [c for r in ran for c in r["codes"].values()]
    low = [r["model"] for r in compiled if r["conv"] and (r["mac_share"] or 0) < 0.9]
    return {"ran": len(ran), "skipped": len(rows) - len(ran), "compiled": len(compiled),
            "rate": len(compiled) / len(ran) if ran else 0.0, "exit1": codes.count(1), "exit3": codes.count(3),
            "low_mac_share": low, "passed": sum(1 for r in ran if r["outcome"] == "pass"),
            "unexpected": [r["model"] for r in ran if not r.get("expected")]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--count", type=int, default=16, help="samples in each data folder")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    chosen = [m for m in ZOO if not args.only or m.name in args.only.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="shrink-zoo-"))
    rows = []
    for model in chosen:
        rows.append(run_model(model, work, args.count))
        print(f"{model.name}: {rows[-1]['codes']} {rows[-1]['outcome'][:200]}", file=sys.stderr, flush=True)
    print(table(rows))
    s = summary(rows)
    print(f"\ncompiled {s['compiled']}/{s['ran']} ({s['rate']:.0%}, goal >=90%), passed all four commands "
          f"{s['passed']}, skipped {s['skipped']}; exit 1: {s['exit1']}, exit 3: {s['exit3']}; conv nets under 90% "
          f"int8 MACs: {', '.join(s['low_mac_share']) or 'none'}; other than the zoo expects: "
          f"{', '.join(s['unexpected']) or 'none'}  (work: {work})")
    for model in chosen:
        if model.why:
            print(f"  {model.name}: expected exit {model.expect}: {model.why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
