"""`shrink verify BUNDLE --data PATH` beside the compile's own accuracy, in one run.

Run: `python bench/verify_data.py` (about a minute: one digits compile, four verifies, each a fresh process).

Compiles recipes/digits-cnn.json (an empty pass cache), then scores the bundle with `verify --data` on:
1. the compile's eval split exported as an .npz of model inputs (the same tensors: the count must be identical);
2. the same 360 digits as 8x8 PNG files in label folders (the bundle's record decodes, rescales and resizes
   them: goal within one point of the compile);
3. the same PNG files inverted (dark ink on white: data the model was not trained for), with a budget;
4. the PNG files again with `--budget accuracy=0.95`.
Prints each count beside the compile's, the verdict and the wall time of each verify process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = 360


def _shrink(*args: str, env: dict[str, str]) -> tuple[int, dict, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "shrink", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 4):
        sys.exit(f"shrink {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}")
    return proc.returncode, json.loads(proc.stdout) if "--json" in args else {}, seconds


def _pngs(root: Path, invert: bool = False) -> Path:
    """The eval split's 8x8 digits as 8-bit PNG files in label folders (sklearn's 0-16 levels scaled to 0-255)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    _, held = train_test_split(np.arange(len(bunch.target)), test_size=EVAL, random_state=0, stratify=bunch.target)
    for i in held:
        pixels = np.round(bunch.images[i] * 255 / 16).astype(np.uint8)
        path = root / str(bunch.target[i]) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - pixels if invert else pixels).save(path)
    return root


def main() -> None:
    from shrink_sklearn.digits import digits_splits

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "SHRINK_CACHE_DIR": str(work / "cache")}
        bundle = work / "digits"
        _, _, compile_s = _shrink("compile", str(ROOT / "recipes" / "digits-cnn.json"), "-o", str(bundle), env=env)
        compiled = json.loads((bundle / "manifest.json").read_text())["metrics"]["accuracy"]
        x, y = digits_splits(32, 0)["eval"]
        np.savez(work / "eval.npz", input=x, labels=y)
        cases = [("eval split as .npz", work / "eval.npz", []), ("eval split as 8x8 PNG", _pngs(work / "png"), []),
                 ("inverted PNG (not trained for)", _pngs(work / "inverted", invert=True), ["--budget", "accuracy=0.95"]),
                 ("eval split as 8x8 PNG", work / "png", ["--budget", "accuracy=0.95"])]
        print(f"recipes/digits-cnn.json compiled in {compile_s:.1f} s; the compile reports {compiled:.2%} "
              f"({round(compiled * EVAL)} of {EVAL}) on its eval split")
        print(f"{'--data':32} {'budget':>14} {'correct':>9} {'accuracy':>9} {'vs compile':>11} {'exit':>5} {'verify s':>9}")
        for name, path, budget in cases:
            code, result, seconds = _shrink("verify", str(bundle), "--data", str(path), "--json", *budget, env=env)
            data = result["data"]
            print(f"{name:32} {' '.join(budget).replace('--budget ', '') or '-':>14} {data['correct']:>5}/{data['samples']:<3} "
                  f"{data['accuracy']:>9.2%} {(data['accuracy'] - compiled) * 100:>+10.2f}p {code:>5} {seconds:>9.2f}")


if __name__ == "__main__":
    main()
