"""Fuzz `plan`, `compile` and `targets` / `plan --target` with structurally wrong recipes and profiles.

Runs the strategies of tests/test_fuzz.py for N examples per surface (default 1,000) in-process and
prints, per surface: cases tried, exit codes seen, tracebacks, and property failures (exit 1, a missing
JSON path, a valid document refused, ...). Exits 1 if any case broke a property.

    python bench/fuzz.py [--examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.test_fuzz import SURFACES, Mutation, Outcome, Workspace, make_workspace  # noqa: E402


def fuzz_surface(name: str, strategy: Any, runner: Any, ws: Workspace, examples: int, rng_seed: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"cases": 0, "commands": 0, "codes": Counter(), "kinds": Counter(), "tracebacks": 0, "failures": []}

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(mutation=strategy, json_mode=st.booleans())
    def one(mutation: Mutation, json_mode: bool) -> None:
        stats["cases"] += 1
        stats["kinds"][mutation.kind.split(":")[0]] += 1
        try:
            result = runner(ws, mutation, json_mode)
            outcomes = result if isinstance(result, list) else [result]
        except AssertionError as exc:
            stats["failures"].append(f"{mutation.describe()}: {str(exc).splitlines()[0][:300]}")
            return
        for outcome in outcomes:
            assert isinstance(outcome, Outcome)
            stats["commands"] += 1
            stats["codes"][outcome.code] += 1
            stats["tracebacks"] += ("Traceback" in outcome.out + outcome.err)

    one()
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per surface (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="shrink-fuzz-") as tmp:
        ws = make_workspace(Path(tmp))
        print(f"{'surface':24} {'cases':>6} {'commands':>8} {'tracebacks':>10}  exit codes seen        seconds")
        for name, (strategy, runner) in SURFACES.items():
            started = time.perf_counter()
            stats = fuzz_surface(name, strategy, runner, ws, args.examples, args.seed)
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(stats["codes"].items()))
            print(f"{name:24} {stats['cases']:>6} {stats['commands']:>8} {stats['tracebacks']:>10}  {codes:22} "
                  f"{time.perf_counter() - started:7.1f}")
            print(f"{'':24} mutations: " + ", ".join(f"{k} {n}" for k, n in sorted(stats["kinds"].items())))
            for failure in stats["failures"][:20]:
                print(f"  FAIL {failure}")
            failed |= bool(stats["failures"]) or stats["tracebacks"] > 0 or 1 in stats["codes"]
    print("result:", "FAIL" if failed else "ok (no tracebacks, no exit 1, every exit 2 named its file and JSON path)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
