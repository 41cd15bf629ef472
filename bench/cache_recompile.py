"""First compile vs cached recompile of a recipe, each a fresh `shrink compile` process, in one run.

Run: `python bench/cache_recompile.py [RECIPE]` (default recipes/digits-cnn.json; about 30 s).

1. first: an empty pass cache, every pass runs (and is stored);
2. cached: the unchanged recipe again, every step restored from the cache;
3. last pass changed: the same recipe with the last pass's options changed (a copy of the recipe
   beside the original, so relative paths still resolve), the earlier passes restored.
Wall time of each process, start to exit; the bundles of 1 and 2 must be byte-identical.
Goal (issue 7): cached / first <= 10%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANGES = {"fuse.ort": {"graph_optimization_level": "basic"}, "quantize.ptq": {"calibration_samples": 100}, "export.onnx": {"parity_samples": 32}}


def _compile(recipe: Path, out: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "shrink", "compile", str(recipe), "-o", str(out)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 4):
        sys.exit(f"compile failed (exit {proc.returncode}):\n{proc.stderr}")
    return seconds


def _hashes(bundle: Path) -> dict[str, str]:
    return {k: v["sha256"] for k, v in json.loads((bundle / "manifest.json").read_text())["files"].items()}


def main() -> None:
    recipe = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "recipes" / "digits-cnn.json"
    raw = json.loads(recipe.read_text())
    last = raw["passes"][-1]
    change = CHANGES.get(last["pass"], {})
    changed = recipe.with_name(f".{recipe.stem}-changed-last.json")
    changed.write_text(json.dumps({**raw, "passes": [*raw["passes"][:-1], {**last, **change}]}))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "SHRINK_CACHE_DIR": str(Path(tmp) / "cache")}
            first = _compile(recipe, Path(tmp) / "first", env)
            cached = _compile(recipe, Path(tmp) / "cached", env)
            later = _compile(changed, Path(tmp) / "later", env)
            identical = _hashes(Path(tmp) / "first") == _hashes(Path(tmp) / "cached")
    finally:
        changed.unlink(missing_ok=True)
    print(f"recipe {recipe.relative_to(ROOT) if recipe.is_relative_to(ROOT) else recipe}")
    print(f"first compile (empty cache)        {first:6.2f} s")
    print(f"cached recompile (unchanged)       {cached:6.2f} s  = {cached / first:.1%} of the first  (goal <= 10%)")
    print(f"last pass changed ({last['pass']} {change}) {later:6.2f} s  = {later / first:.1%} of the first")
    print(f"cached bundle byte-identical to the first: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
