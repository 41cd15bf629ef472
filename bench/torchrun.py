"""A distillation in one process and on N data-parallel ranks (`torchrun --standalone`), in one run.

    python bench/torchrun.py [--recipe recipes/minilm-tinybert.json] [--ranks 2] [--sentences 2048]
                             [--epochs 2] [--target x86-64-avx2] [--out dist/bench-torchrun]

The recipe's first pass (a `distill.*` pass) is kept, followed by `export.onnx` (so the bundle holds the
student's weights, fp32; `--target` defaults to a board whose storage holds an fp32 MiniLM student); `--sentences` and `--epochs` shorten it. Both sides compile the same recipe with
`shrink compile` into an empty pass cache of their own, one after the other (the N ranks need the machine's
cores; running the sides at once would halve each), the one process first. Every process has one torch
thread (`SHRINK_TORCH_THREADS=1`, `OMP_NUM_THREADS=1`): the N-rank side uses N threads in all. Reported per
side: wall time of the command (torchrun's start-up included), the distillation's own `train_seconds` (from
the manifest), and the ratio one process / N ranks; then the largest difference between the two students'
weights (data-parallel training with the same global batch and seed trains the same student, up to float
rounding; BatchNorm students excepted, see `shrink_common.distributed`). With `precision` bfloat16 (the
TinyBERT default on CPUs with AVX512-BF16) the rounding is bf16's: a half batch's weight gradient is rounded
to bf16 before the ranks sum it, so the students differ in the weights' third digit while scoring the same.
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
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def shortened(recipe: Path, sentences: int | None, epochs: int | None, target: str, dest: Path) -> Path:
    """The recipe with only its first (distillation) pass and export.onnx, paths made absolute."""
    raw = json.loads(recipe.read_text())
    first = dict(raw["passes"][0])
    if not str(first.get("pass", "")).startswith("distill."):
        raise SystemExit(f"{recipe}: the first pass is {first.get('pass')!r}, not a distillation")
    if sentences:
        first["max_sentences"] = sentences
    if epochs:
        first["epochs"] = epochs
    raw["passes"] = [first, {"pass": "export.onnx"}]
    raw["target"] = target
    model = raw.get("model", {})
    for key in ("path", "factory", "weights"):  # the copy lives elsewhere: its model files by absolute path
        if isinstance(model.get(key), str):
            head, colon, tail = model[key].partition(":")
            model[key] = str((recipe.parent / head).resolve()) + colon + tail
    dest.write_text(json.dumps(raw, indent=2))
    return dest


def run_side(name: str, command: list[str], out: Path, cache: Path, cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(SHRINK_CACHE_DIR=str(cache), SHRINK_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"{name}: exit {proc.returncode}")
    manifest = json.loads((out / "manifest.json").read_text())
    distill = next(h for h in manifest["history"] if str(h["name"]).startswith("distill."))
    return {"side": name, "wall_seconds": round(wall, 2), "train_seconds": distill["details"].get("train_seconds"),
            "ranks": distill["details"].get("ranks", 1), "final_losses": distill["details"].get("final_losses"),
            "metrics": {k: v for k, v in distill["metrics"].items() if k in ("cosine", "spearman", "accuracy")}}


def initializers(bundle: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(bundle / "model.onnx")).graph.initializer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "minilm-tinybert.json")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=2048, help="max_sentences of the distillation (0: the recipe's)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the distillation (0: the recipe's)")
    parser.add_argument("--target", default="x86-64-avx2", help="the compile's target")
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "bench-torchrun")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-torchrun-") as tmp:
        work = Path(tmp)
        recipe = shortened(args.recipe.resolve(), args.sentences or None, args.epochs or None, args.target,
                            work / "recipe.json")
        one, many = args.out / "one", args.out / f"ranks-{args.ranks}"
        sides = [
            run_side("1 process", [sys.executable, "-m", "shrink", "compile", str(recipe), "-o", str(one)], one,
                     work / "cache-one", work),
            run_side(f"{args.ranks} ranks", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                             "--nproc-per-node", str(args.ranks), "-m", "shrink", "compile", str(recipe),
                                             "-o", str(many)], many, work / "cache-many", work),
        ]
    a, b = initializers(one), initializers(many)
    difference = max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max(initial=0.0)) for k in a)
    result = {"recipe": str(args.recipe), "sentences": args.sentences, "epochs": args.epochs, "cpus": os.cpu_count(),
              "threads": {"1 process": 1, f"{args.ranks} ranks": f"{args.ranks} x 1"}, "sides": sides,
              "wall_ratio_one_over_ranks": round(sides[0]["wall_seconds"] / sides[1]["wall_seconds"], 3),
              "train_ratio_one_over_ranks": round(sides[0]["train_seconds"] / sides[1]["train_seconds"], 3),
              "max_weight_difference": difference}
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    for side in sides:
        print(f"{side['side']:>10}: wall {side['wall_seconds']:8.2f} s, distillation {side['train_seconds']:8.2f} s, "
              f"{side['ranks']} x 1 torch thread, metrics {side['metrics']}")
    print(f"speed-up (1 process / {args.ranks} ranks): wall x{result['wall_ratio_one_over_ranks']}, "
          f"distillation x{result['train_ratio_one_over_ranks']}")
    print(f"largest student weight difference: {difference:.3g}")
    print(f"written to {args.out / 'result.json'}")


if __name__ == "__main__":
    main()
