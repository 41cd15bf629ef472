"""A compile killed with SIGKILL leaves the previous bundle or the complete new one, never a partial one.

The full run (40 random kill moments) is `python bench/kill_atomicity.py`; the suite runs a few.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_partial_bundle(tmp_path: Path):
    spec = importlib.util.spec_from_file_location("kill_atomicity", REPO / "bench" / "kill_atomicity.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    outcomes = bench.run_trials(4, tmp_path, seed=1)
    assert outcomes["broken"] == 0 and outcomes["not cleaned"] == 0, outcomes
    assert outcomes["old"] + outcomes["new"] == 4
