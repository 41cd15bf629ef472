"""Ctrl-C during `compile`: exit 130, temporary files removed, the previous bundle kept as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_fuzz import TINY_FACTORY


@pytest.mark.slow
def test_sigint_during_training_exits_130_and_keeps_the_previous_bundle(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text(TINY_FACTORY)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({
        "schema_version": 1, "name": "tiny", "target": "cortex-a53",
        "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
        "data": {"source": "sklearn.digits", "image_size": 8},
        "passes": [{"pass": "distill.kd", "student": {"factory": "tiny.py:tiny"}, "epochs": 1000}, {"pass": "export.onnx"}],
    }))
    out = tmp_path / "bundle"
    out.mkdir()
    previous = json.dumps({"kind": "shrink-bundle", "manifest_version": 1, "files": {"model.onnx": {"sha256": "0", "size": 3}}})
    (out / "manifest.json").write_text(previous)
    (out / "model.onnx").write_bytes(b"old")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # a shell without job control starts background jobs with SIGINT ignored, and a child inherits an ignored signal
    # (a caught one is reset to the default at exec): catch it here while starting the compile, so it gets the
    # default disposition, as from a terminal, whatever started the tests
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "shrink", "compile", str(recipe), "-o", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    finally:
        signal.signal(signal.SIGINT, handler)
    seen = []
    try:
        deadline = time.monotonic() + 180
        assert proc.stderr is not None
        for line in proc.stderr:  # progress lines on stderr: wait until the training pass is running
            seen.append(line)
            if "passes[0] distill.kd" in line:
                break
            assert time.monotonic() < deadline, "compile never started its first pass"
        else:
            raise AssertionError("compile ended before its first pass:\n" + "".join(seen))
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert (out / "manifest.json").read_text() == previous and (out / "model.onnx").read_bytes() == b"old"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    assert not list(tmp_path.glob(".bundle.shrink-*")), "temporary bundle directories left behind"
    assert not list(scratch.glob("shrink-run-*")), "the run's workspace was not removed"
