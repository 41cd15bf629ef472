"""OCR benchmark: shrink's bundles of two pretrained PaddleOCR models against their fp32 source and ONNX Runtime's
own `quantize_static` on the same calibration images, in one run.

    python bench/ocr.py [--model recognizer|orientation|both] [--eval 300] [--runs 100]

The models are the ones the `rapidocr-onnxruntime` wheel ships: the PP-OCRv4 text-line recognizer and the
text-direction classifier. The bench renders two disjoint sets of text lines (`examples/ocr/render.py`,
different seeds): 200 calibration lines and `--eval` held-out lines. It compiles the example recipe
(`recipes/ocr-recognizer.json`, `recipes/ocr-orientation.json`) with its data section pointed at those sets
(declared `calibration` and `eval` splits), and quantizes the same source file with ONNX Runtime's
`quantize_static` (QDQ: its defaults, s8 activations per tensor; the u8 activations / s8 weights shrink uses
on this target, per tensor and per channel) on the same 200 images, preprocessed the
same way. Then all models run on the held-out lines, on this machine, one ORT thread each, runs interleaved
round-robin so drift hits all alike:

* size: file bytes;
* latency: median batch-1 wall time of `--runs` runs;
* agreement with fp32: the recognizer's decoded string (CTC greedy, with the dictionary the model file
  carries) equals fp32's; the classifier's top-1 equals fp32's;
* accuracy: exact match with the rendered string (surrounding spaces ignored), or top-1 against the label.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = {"recognizer": ("ocr-recognizer.json", "recognition", "ch_PP-OCRv4_rec_infer.onnx"),
          "orientation": ("ocr-orientation.json", "orientation", "ch_ppocr_mobile_v2.0_cls_infer.onnx")}


def packaged(name: str) -> Path:
    dist = metadata.distribution("rapidocr-onnxruntime")
    return next(Path(str(dist.locate_file(f))) for f in dist.files or [] if str(f).endswith("/" + name))


def render(task: str, count: int, out: Path, seed: int) -> None:
    subprocess.run([sys.executable, str(REPO / "examples/ocr/render.py"), "--task", task, "--count", str(count),
                    "--out", str(out), "--seed", str(seed)], check=True, capture_output=True)


def images(folder: Path) -> tuple[list[Path], list[Any]]:
    """The files of a rendered set and their truth: the string (recognition) or the class index (orientation)."""
    if (folder / "labels.tsv").is_file():
        rows = [line.split("\t", 1) for line in (folder / "labels.tsv").read_text(encoding="utf-8").splitlines()]
        return [folder / name for name, _ in rows], [text for _, text in rows]
    files = sorted(folder.glob("*/*.png"))
    return files, [["0", "180"].index(f.parent.name) for f in files]


def preprocess(files: list[Path]) -> np.ndarray:
    """PaddleOCR's input: BGR, (x / 255 - 0.5) / 0.5, NCHW (the recipes' data sections say the same)."""
    from PIL import Image

    batch = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32)[..., ::-1] for f in files]
    return np.ascontiguousarray((np.stack(batch) / 255 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


def ort_static(source: Path, out: Path, calibration: np.ndarray, **settings: Any) -> None:
    """ONNX Runtime's documented recipe: pin the input shape, upgrade to opset 13 (per-channel QDQ needs it;
    the same graph serves per-tensor), `quant_pre_process`, `quantize_static` (QDQ) with `settings`."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quant_pre_process, quantize_static

    model = onnx.load(str(source))
    if next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) < 13:
        model = version_converter.convert_version(model, 13)
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, *calibration.shape[1:])):
        dim.Clear()
        dim.dim_value = value
    pinned, pre = out.with_suffix(".pinned.onnx"), out.with_suffix(".pre.onnx")
    onnx.save(model, str(pinned))
    try:
        quant_pre_process(str(pinned), str(pre))
    except Exception:  # noqa: BLE001 - symbolic shape inference fails on some PaddleOCR graphs; ORT's own fallback
        quant_pre_process(str(pinned), str(pre), skip_symbolic_shape=True)
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._rows = iter(calibration)

        def __len__(self) -> int:
            return len(calibration)

        def set_range(self, start_index: int, end_index: int) -> None:  # ORT's strided (histogram) calibration
            self._rows = iter(calibration[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self._rows, None)
            return None if row is None else {name: row[None]}

    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, **settings)


def decoder(source: Path) -> Any:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    chars = ["", *meta["character"].split("\n"), " "]  # CTC blank first; PaddleOCR appends the space

    def decode(probs: np.ndarray) -> str:
        best = probs.argmax(-1)
        return "".join(chars[i] for j, i in enumerate(best) if i and (j == 0 or i != best[j - 1])).strip()

    return decode


def measure(models: dict[str, Path], x: np.ndarray, truth: list[Any], runs: int, decode: Any) -> dict[str, dict[str, Any]]:
    from shrink.support.ort import session

    sessions = {name: session(path) for name, path in models.items()}
    answers: dict[str, list[Any]] = {}
    for name, sess in sessions.items():
        feed = sess.get_inputs()[0].name
        outputs = [sess.run(None, {feed: x[i:i + 1]})[0][0] for i in range(len(x))]
        answers[name] = [decode(o) if decode else int(o.argmax()) for o in outputs]
    reference = answers[next(iter(models))]
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(runs):
        for name, sess in sessions.items():
            feed = {sess.get_inputs()[0].name: x[:1]}
            start = time.perf_counter()
            sess.run(None, feed)
            times[name].append(time.perf_counter() - start)
    return {name: {"bytes": path.stat().st_size, "latency_ms": float(np.median(times[name]) * 1000),
                   "agreement": float(np.mean([a == b for a, b in zip(answers[name], reference)])),
                   "accuracy": float(np.mean([a == t for a, t in zip(answers[name], truth)]))}
            for name, path in models.items()}


def bench(which: str, eval_count: int, runs: int, work: Path) -> int:
    recipe_name, task, file = MODELS[which]
    source = packaged(file)
    calibration_dir, eval_dir = work / "calibration", work / "eval"
    render(task, 200, calibration_dir, seed=101)
    render(task, eval_count, eval_dir, seed=202)
    recipe = json.loads((REPO / "recipes" / recipe_name).read_text())
    recipe["data"] = {k: v for k, v in recipe["data"].items() if k not in ("path", "eval_size", "calibration_size")}
    recipe["data"].update({"calibration": str(calibration_dir), "eval": str(eval_dir)})
    (work / "recipe.json").write_text(json.dumps(recipe))
    bundle = work / "bundle"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "shrink", "compile", str(work / "recipe.json"), "-o", str(bundle),
                           "--no-cache"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return proc.returncode
    calibration = preprocess(images(calibration_dir)[0])
    files, truth = images(eval_dir)
    x = preprocess(files)
    from onnxruntime.quantization import QuantType

    models = {"fp32 source": source}
    for label, settings in (("ORT static defaults", {}),  # s8 activations, s8 weights, per tensor
                            ("ORT static u8/s8", {"activation_type": QuantType.QUInt8}),  # shrink's dtypes (the target's)
                            ("ORT static u8/s8 per-ch", {"activation_type": QuantType.QUInt8, "per_channel": True})):
        models[label] = work / f"{label.replace(' ', '_').replace('/', '')}.onnx"
        ort_static(source, models[label], calibration, **settings)
    models["shrink bundle"] = bundle / "model.onnx"
    results = measure(models, x, truth, runs, decoder(source) if task == "recognition" else None)

    metric = "exact match" if task == "recognition" else "top-1"
    print(f"\n{which}: {file} ({len(files)} held-out lines, 200 calibration lines; {metric})")
    print(f"{'model':<24}{'bytes':>12}{'latency ms':>12}{'agreement':>11}{'accuracy':>10}")
    for name, row in results.items():
        print(f"{name:<24}{row['bytes']:>12,}{row['latency_ms']:>12.3f}{row['agreement']:>11.2%}{row['accuracy']:>10.2%}")
    ours = results["shrink bundle"]
    for base in models:
        if base != "shrink bundle":
            row = results[base]
            print(f"shrink vs {base}: {row['bytes'] / ours['bytes']:.2f}x smaller, "
                  f"{row['latency_ms'] / ours['latency_ms']:.2f}x faster, agreement {100 * (ours['agreement'] - row['agreement']):+.2f} "
                  f"points, accuracy {100 * (ours['accuracy'] - row['accuracy']):+.2f} points")
    print(f"compile wall time: {seconds:.1f} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*MODELS, "both"], default="both")
    parser.add_argument("--eval", type=int, default=300, help="held-out lines (agreement and accuracy)")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model (interleaved)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for which in (list(MODELS) if args.model == "both" else [args.model]):
        with tempfile.TemporaryDirectory() as tmp:
            code = bench(which, args.eval, args.runs, Path(tmp))
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
