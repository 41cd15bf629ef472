"""Digits benchmark: the shrink bundle against the fp32 teacher and two baselines, in one run.

    python bench/digits.py [--recipe recipes/digits-cnn.json] [--runs 300]

Compiles the recipe (timing the whole compile as a subprocess), builds the baselines a user would
pick instead — ONNX Runtime `quantize_dynamic` on the teacher and NNCF post-training quantization
(ONNX backend, calibrated on the same calibration split) on the teacher — then measures all of them
on the same eval split and machine: file size, parameters, MACs (static analysis), median batch-1
latency under ONNX Runtime (1 intra-op thread, runs interleaved round-robin so drift hits all
models alike) and accuracy. Prints a table and the ratios against the teacher and the baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def export_teacher(path: Path) -> None:
    import torch

    sys.path.insert(0, str(REPO / "examples" / "digits"))
    from model import teacher  # type: ignore[import-not-found]

    torch.set_num_threads(1)
    model = teacher()
    model.load_state_dict(torch.load(REPO / "examples/digits/teacher.pt", weights_only=True))
    model.eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def ort_dynamic(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def nncf_ptq(src: Path, dst: Path, calibration: np.ndarray) -> None:
    import nncf
    import onnx

    model = onnx.load(str(src))
    dataset = nncf.Dataset(list(calibration), lambda x: {"input": x[None]})
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration))
    onnx.save(quantized, str(dst))


def measure(models: dict[str, Path], x: np.ndarray, y: np.ndarray, runs: int) -> dict[str, dict[str, float]]:
    from shrink.analysis import analyze
    from shrink.support.ort import run_session, session

    results: dict[str, dict[str, float]] = {}
    sessions = {}
    for name, path in models.items():
        analysis = analyze(path, {"input": [1, 1, 32, 32]})
        logits = run_session(path, {"input": x})[0]
        results[name] = {"bytes": path.stat().st_size, "params": analysis.params, "macs": analysis.macs,
                         "accuracy": float((logits.argmax(1) == y).mean()), "times": []}
        sessions[name] = session(path)
    sample = {"input": np.ascontiguousarray(x[:1])}
    for sess in sessions.values():
        for _ in range(20):
            sess.run(None, sample)
    for _ in range(runs):
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, sample)
            results[name]["times"].append(time.perf_counter() - start)
    for row in results.values():
        row["latency_ms"] = float(np.median(row.pop("times")) * 1000)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "digits-cnn.json"))
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from shrink_sklearn.digits import digits_splits

    splits = digits_splits(32, 0)
    x_eval, y_eval = splits["eval"]
    calibration = splits["calibration"][0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = work / "bundle"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "shrink", "compile", args.recipe, "-o", str(bundle), "--json", "--no-cache"],
                              capture_output=True, text=True)
        compile_seconds = time.perf_counter() - start
        verdict = json.loads(proc.stdout)
        if proc.returncode not in (0, 4):
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        export_teacher(work / "teacher.onnx")
        ort_dynamic(work / "teacher.onnx", work / "ort_dynamic.onnx")
        nncf_ptq(work / "teacher.onnx", work / "nncf_ptq.onnx", calibration)
        models = {"teacher fp32": work / "teacher.onnx", "ORT quantize_dynamic": work / "ort_dynamic.onnx",
                  "NNCF PTQ": work / "nncf_ptq.onnx", "shrink bundle": bundle / "model.onnx"}
        results = measure(models, np.ascontiguousarray(x_eval), y_eval, args.runs)

    print(f"\n{'model':<22}{'bytes':>10}{'params':>10}{'MACs':>12}{'latency ms':>12}{'accuracy':>10}")
    for name, row in results.items():
        print(f"{name:<22}{row['bytes']:>10,}{row['params']:>10,}{row['macs']:>12,}{row['latency_ms']:>12.4f}{row['accuracy']:>10.2%}")
    teacher, ours = results["teacher fp32"], results["shrink bundle"]
    print(f"\nshrink vs teacher: {teacher['bytes'] / ours['bytes']:.1f}x smaller, "
          f"{teacher['latency_ms'] / ours['latency_ms']:.2f}x faster, {teacher['macs'] / ours['macs']:.1f}x fewer MACs, "
          f"accuracy drop {100 * (teacher['accuracy'] - ours['accuracy']):.2f} points")
    for base in ("ORT quantize_dynamic", "NNCF PTQ"):
        row = results[base]
        print(f"shrink vs {base}: {row['bytes'] / ours['bytes']:.1f}x smaller, {row['latency_ms'] / ours['latency_ms']:.2f}x faster, "
              f"accuracy {100 * (ours['accuracy'] - row['accuracy']):+.2f} points")
    print(f"compile wall time: {compile_seconds:.1f} s (verdict {verdict['verdict']}, exit {proc.returncode})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
