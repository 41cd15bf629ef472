"""The zoo (bench/zoo.py) in CI: outside models run through the commands a user types — inspect, init with their
data, compile, verify — each asserting its exit codes, no exit 1 or 3, and >=90% int8 MACs on the conv nets.

Bounded for 2 cores: small data folders, small transformers configs, the smaller wheel models, the CLI in-process
(one import of torch). Models whose package is not installed (silero-vad, ddddocr: not in the `dev` extra) are
skipped; the bench runs the whole zoo and prints the table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("shrink_zoo_bench", REPO / "bench" / "zoo.py")
assert _spec is not None and _spec.loader is not None
zoo = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = zoo  # dataclasses look their module up there
_spec.loader.exec_module(zoo)

# ddddocr's wheels (85 MB with opencv) are left to the bench
CI = ["ppocr-det", "ppocr-rec", "ppocr-cls", "silero-vad", "silero-vad-ifless", "mobilenet_v2", "resnet-18", "vit",
      "mobilevit", "bert-tiny", "distilbert", "roberta", "bert-tiny-onnx", "mobilenet_v2-onnx"]
MODELS = {m.name: m for m in zoo.ZOO}


@pytest.mark.slow
@pytest.mark.parametrize("name", CI)
def test_an_outside_model_goes_through_inspect_init_compile_verify(name: str, cli, tmp_path: Path, monkeypatch) -> None:
    model = MODELS[name]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    def run(*args: str | Path, cwd: Path) -> tuple[int, dict[str, Any], str]:
        monkeypatch.chdir(cwd)
        result = cli("--json", *args)
        try:
            payload = json.loads(result.out)
        except json.JSONDecodeError:
            payload = {}
        return result.code, payload, result.err

    row = zoo.run_model(model, tmp_path, 12, runner=run)
    if not row["codes"]:
        pytest.skip(row["outcome"])
    assert not {1, 3} & set(row["codes"].values()), row["outcome"]
    assert row["expected"], (row["codes"], row["outcome"])
    if "compile" not in model.expect:
        assert row["outcome"] == "pass"
        if model.conv:
            assert row["mac_share"] >= 0.9, row
    else:
        assert "cannot verify" in row["outcome"]
