"""The static arena estimate of `.tflite` models against the arena TensorFlow Lite Micro needs, side by side.

    python bench/tflm_arena.py MODEL.tflite [MODEL.tflite ...]

Needs `pip install -e '.[tflite]'`. For each model: the static estimate the `ram` check uses without TFLite Micro
(`tflm_arena_estimate`: TFLM's persistent data + its greedy plan of the tensors, `Analysis.arena_bytes`, or
the kernels' temporary tensors while preparing where those are more) and the smallest arena that runs
it under TFLite Micro's Python interpreter (`shrink.support.tflm.measure`), and their ratio.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shrink.analysis.tflite_model import analyze_tflite, tflm_arena_estimate
from shrink.support import tflm


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(f"{'model':40} {'plan':>7} {'prep~':>7} {'tail~':>7} {'static':>7} {'measured':>9} {'head':>7} {'tail':>7} "
          f"{'temp':>5} {'ratio':>6}")
    for name in sys.argv[1:]:
        path = Path(name)
        plan = analyze_tflite(path).arena_bytes
        static, tail, prepare = tflm_arena_estimate(path, plan)
        arena = tflm.measure(path)
        print(f"{path.parent.name + '/' + path.name:40} {plan:7} {prepare:7} {tail:7} {static:7} {arena.total:9} "
              f"{arena.head:7} {arena.tail:7} {arena.temp:5} {static / arena.total:6.3f}")


if __name__ == "__main__":
    main()
