"""`shrink search` on the digits recipe beside the hand-tuned recipe, in one run.

    python bench/search.py [--trials 30] [--target cortex-a53] [--sampler auto] [--keep DIR]

Compiles `recipes/digits-cnn.json` as written (the baseline, a cold pass cache), then searches it (the spaces its
passes declare, the default objectives accuracy, size and loss) in a fresh cache, and prints: trials, feasible count,
the pass-cache hit rate, the Pareto front (goal: at least 5 points), the wall time, and whether a searched trial (not
the recipe as written, which the search runs as its first trial) is at least as small at equal or better accuracy.
Threads: one torch and one ORT thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--target", default="cortex-a53")
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "digits-cnn.json"))
    parser.add_argument("--sampler", default="auto", help="the search's sampler (auto, tpe, nsga2, random)")
    parser.add_argument("--keep", metavar="DIR", help="write the search folder here (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="shrink-bench-search-") as tmp:
        os.environ["SHRINK_CACHE_DIR"] = str(Path(tmp) / "cache-baseline")
        import shrink

        started = time.monotonic()
        hand = shrink.compile(args.recipe, target=args.target, output=Path(tmp) / "hand")
        hand_s = time.monotonic() - started
        hand_acc, hand_size = hand.metrics["accuracy"], hand.metrics["model_bytes"]

        os.environ["SHRINK_CACHE_DIR"] = str(Path(tmp) / "cache-search")  # the search starts cold too
        out = Path(args.keep) if args.keep else Path(tmp) / "search"
        started = time.monotonic()
        found = shrink.search(args.recipe, target=args.target, trials=args.trials, output=out, sampler=args.sampler)
        search_s = time.monotonic() - started

        print(f"hand-tuned recipe: {hand.verdict}, accuracy {hand_acc:.2%}, {hand_size:,} B, compiled in {hand_s:.1f} s")
        print(f"search: {len(found.trials)} trials, {found.feasible} feasible, pass-cache hit rate "
              f"{found.hit_rate:.0%} of steps, {search_s:.1f} s wall ({search_s / 60:.2f} min; ratio to one compile "
              f"{search_s / hand_s:.1f}x)")
        print(f"front ({len(found.front)} points):")
        for point in found.front:
            f = point["figures"]
            print(f"  trial {point['trial']:>3}{' (recipe as written)' if point['baseline'] else ''}: accuracy "
                  f"{f['accuracy']:.2%}, {f['size']:,.0f} B ({f['size'] / hand_size:.2f}x the hand-tuned size), "
                  f"loss {f['loss']:.4f}  " + json.dumps(point["params"]))
        print(f"front: {len(found.front)} feasible points (goal: at least 5); chosen: trial {found.best['trial']}"
              if found.best else "front: no feasible point")
        searched = [t for t in found.trials if t["feasible"] and not t["baseline"]]
        better = [t for t in searched if t["figures"]["size"] <= hand_size and t["figures"]["accuracy"] >= hand_acc]
        if better:
            t = min(better, key=lambda t: (t["figures"]["size"], -t["figures"]["accuracy"]))
            print(f"a searched trial at least as small at equal or better accuracy: trial {t['trial']}, "
                  f"{t['figures']['size']:,.0f} B ({t['figures']['size'] / hand_size:.2f}x), accuracy "
                  f"{t['figures']['accuracy']:.2%} vs {hand_acc:.2%}")
        else:
            print("no searched trial is at least as small at equal or better accuracy than the hand-tuned recipe")
        print(f"best.json compiled again gives the trial's model: {found.reproduced}")
        return 0 if found.ok and better and found.reproduced and len(found.front) >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
