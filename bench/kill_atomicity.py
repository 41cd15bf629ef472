"""SIGKILL a compile at random moments: the output path must always hold the previous bundle or the
complete new one, and the next compile must clean up whatever the killed one left behind.

Run: `python bench/kill_atomicity.py [TRIALS]` (default 40; about 1-3 s per trial on one core).

Each trial compiles a tiny recipe (a 4-channel CNN on 8x8 digits: distill, export, int8) whose
budget differs per trial, so the old and new bundles are distinguishable, and kills the process
after a random delay in [0, 1.2 x the time a compile takes]. Half the trials use the pass cache
(the compile is then mostly checks and bundle writing), half `--no-cache` (mostly training).
After the kill the output directory is classified:
  old      the previous bundle, byte-identical manifest
  new      the new bundle, complete: `shrink verify` passes and the manifest has this trial's budget
  broken   anything else (missing, half-written, failing verify): must be 0
Then an unkilled compile runs, and no `.NAME.shrink-*` temporaries may remain beside the bundle, nor
any workspace in the compiles' TMPDIR.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TINY = '''
import torch
from torch import nn


def tiny(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Flatten(), nn.Linear(width * 8 * 8, 10))
'''


def _recipe(workdir: Path, budget: int) -> Path:
    path = workdir / f"recipe-{budget}.json"
    path.write_text(json.dumps({
        "schema_version": 1, "name": "tiny", "target": "cortex-a53",
        "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
        "data": {"source": "sklearn.digits", "image_size": 8},
        "budget": {"model_bytes": budget},
        "passes": [{"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 2}}, "epochs": 3},
                   {"pass": "export.onnx"}, {"pass": "quantize.ptq"}],
    }))
    return path


def _shrink(*args: str | Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "shrink", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _classify(out: Path, previous: bytes, budget: int, env: dict[str, str]) -> str:
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return "broken"
    if manifest.read_bytes() == previous:
        return "old"
    try:
        recorded = json.loads(manifest.read_text())["recipe"]["raw"]["budget"]["model_bytes"]
    except (ValueError, KeyError):
        return "broken"
    verify = subprocess.run([sys.executable, "-m", "shrink", "verify", str(out)], env=env, capture_output=True)
    return "new" if recorded == budget and verify.returncode == 0 else "broken"


def run_trials(trials: int, workdir: Path, seed: int = 0) -> Counter[str]:
    """Run `trials` kill trials in `workdir`; returns the outcome counts (`broken` must stay 0)."""
    rng = random.Random(seed)
    (workdir / "tiny.py").write_text(TINY)
    (workdir / "tmp").mkdir()
    env = {**os.environ, "SHRINK_CACHE_DIR": str(workdir / "cache"), "TMPDIR": str(workdir / "tmp")}
    out = workdir / "bundle"
    durations = {}
    for mode in ("--no-cache", "--cached"):
        started = time.perf_counter()
        code = _shrink("compile", _recipe(workdir, 10**9), "-o", out, *([mode] if mode == "--no-cache" else []), env=env).wait()
        assert code == 0, f"baseline compile failed with exit {code}"
        durations[mode] = time.perf_counter() - started
    outcomes: Counter[str] = Counter()
    for trial in range(trials):
        mode = "--no-cache" if trial % 2 else "--cached"
        previous = (out / "manifest.json").read_bytes()
        budget = 10**9 + trial + 1
        proc = _shrink("compile", _recipe(workdir, budget), "-o", out, *([mode] if mode == "--no-cache" else []), env=env)
        time.sleep(rng.uniform(0, 1.2 * durations[mode]))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes[_classify(out, previous, budget, env)] += 1
        # an unkilled compile cleans up after the killed one
        code = _shrink("compile", _recipe(workdir, budget), "-o", out, env=env).wait()
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.shrink-")]
        leftovers += [p.name for p in (workdir / "tmp").glob("shrink-run-*")]
        if code != 0 or leftovers:
            outcomes["not cleaned"] += 1
    return outcomes


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        outcomes = run_trials(trials, Path(tmp))
    print(f"{trials} SIGKILL trials in {time.perf_counter() - started:.0f} s: "
          f"previous bundle kept {outcomes['old']}, complete new bundle {outcomes['new']}, "
          f"broken {outcomes['broken']}, temporaries not cleaned {outcomes['not cleaned']}")
    sys.exit(1 if outcomes["broken"] or outcomes["not cleaned"] else 0)


if __name__ == "__main__":
    main()
