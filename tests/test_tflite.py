"""`export.tflite`, the `.tflite` checks (ops against TFLite Micro's kernels, the measured arena) and `verify` on a
`.tflite` bundle, on the tiny CNN over 8x8 digits: BatchNorm folded, weights shared 16 ways, full int8, LUT-coded.

These need the optional extra (`pip install -e '.[dev,tflite]'`) and are skipped without it; they are `slow`
(a litert-torch conversion and TFLite Micro subprocesses: about a minute in all on 2 cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shrink_tflite.options import missing

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=f"export.tflite: {missing()}")]

NO_DECODE_TARGET = {"schema_version": 1, "name": "m4-no-decode", "extends": "cortex-m4",
                    "description": "a Cortex-M4 whose TensorFlow Lite Micro build leaves out the DECODE operator",
                    "runtime": {"name": "tflite-micro", "formats": ["tflite"], "decodes": []}}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile for the module: the tiny CNN through fuse.bn, compress.cluster and export.tflite on cortex-m4."""
    from shrink.cli.main import main
    from shrink.testing import TINY_FACTORY, default_recipe

    work = tmp_path_factory.mktemp("tflite")
    (work / "tiny.py").write_text(TINY_FACTORY)
    recipe = default_recipe() | {"name": "tiny-tflite", "target": "cortex-m4", "passes": [
        {"pass": "fuse.bn"}, {"pass": "compress.cluster", "clusters": 16, "finetune_epochs": 2},
        {"pass": "export.tflite", "parity_samples": 40, "calibration_samples": 40}]}
    (work / "recipe.json").write_text(json.dumps(recipe))
    code = main(["compile", str(work / "recipe.json"), "-o", str(work / "bundle"), "--no-cache"])
    assert code == 0, f"compile exited {code}"
    return work / "bundle"


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_bundle_deploys_a_full_int8_tflite(bundle: Path) -> None:
    from shrink.analysis.tflite_model import read

    assert (bundle / "model.tflite").is_file() and not (bundle / "model.onnx").exists()
    model = read(bundle / "model.tflite")
    graph = model.Subgraphs(0)
    # tensor type 9 is INT8: the model's own input and output are int8, not float with (de)quantize around them
    assert {graph.Tensors(int(i)).Type() for i in [*graph.InputsAsNumpy(), *graph.OutputsAsNumpy()]} == {9}
    checks = {c["name"]: c for c in _manifest(bundle)["checks"]}
    assert checks["ops"]["ok"] and checks["ram"]["ok"] and checks["storage"]["ok"]


def test_export_parity_is_recorded_and_gated(bundle: Path) -> None:
    details = _manifest(bundle)["history"][-1]["details"]
    assert details["float_max_abs"] <= 1e-4  # the float .tflite against torch, within the pass's tolerance
    assert details["int8_top1_agreement"] >= 0.9  # min_agreement
    coding = details["coding"]
    assert coding["deployed"] == "lut" and coding["lut_identical_on"] == 40
    assert coding["lut_bytes"] < coding["int8_bytes"]


def test_measured_arena_runs_the_model_and_ram_uses_it(bundle: Path) -> None:
    from shrink.support import tflm
    from shrink.support.tflite_run import TflmModel

    manifest = _manifest(bundle)
    recorded = manifest["metrics"]["arena_measured"]
    assert recorded["total"] == recorded["head"] + recorded["tail"] + recorded["temp"]
    ram = next(c for c in manifest["checks"] if c["name"] == "ram")
    assert ram["value"] == recorded["total"] and "measured under TFLite Micro" in (ram["cause"] or "")
    again = tflm.measure(bundle / "model.tflite")
    assert again.total == recorded["total"]
    # the static estimate (what the ram check uses without TFLite Micro) is within 15% of the measurement
    from shrink.analysis.tflite_model import analyze_tflite, tflm_arena_estimate

    static, _, _ = tflm_arena_estimate(bundle / "model.tflite", analyze_tflite(bundle / "model.tflite").arena_bytes)
    assert abs(static / again.total - 1) <= 0.15, (static, again)
    # the figure is one that runs: the model loads and infers in an arena of exactly that size
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes((bundle / "model.tflite").read_bytes(), arena_size=again.total)
    port = TflmModel(bundle / "model.tflite").inputs[0]
    interpreter.set_input(np.zeros(port.shape, np.int8), 0)
    interpreter.invoke()
    assert interpreter.get_output(0).shape[-1] == 10


def test_verify_passes_on_the_bundle(bundle: Path, cli) -> None:
    result = cli("verify", bundle, "--json")
    assert result.code == 0, result.err
    checks = {c["name"]: c["ok"] for c in result.json["checks"]}
    assert checks["golden"] and checks["arena"] and checks["ops"]


def test_ops_check_fails_where_the_runtime_lacks_a_kernel(bundle: Path, cli, tmp_path: Path) -> None:
    target = tmp_path / "m4-no-decode.json"
    target.write_text(json.dumps(NO_DECODE_TARGET))
    result = cli("verify", bundle, "--target", target)
    assert result.code == 4
    line = next(line for line in result.out.splitlines() if line.startswith("FAIL ops"))
    assert "CUSTOM:TFLM_DECODE" in line and "runtime.decodes does not list" in line


def test_verify_without_tflite_micro_cannot_verify_golden_and_arena(bundle: Path) -> None:
    import subprocess
    import sys

    # a fresh interpreter in which TFLite Micro's package cannot be imported (as without the extra)
    code = ("import sys; sys.modules['tflite_micro'] = None; from shrink.cli.main import main; "
            f"sys.exit(main(['verify', {str(bundle)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 4, done.stderr
    lines = {line.split()[1].rstrip(":"): line for line in done.stdout.splitlines() if line.startswith(("ok ", "FAIL "))}
    for check in ("golden", "arena"):
        assert lines[check].startswith("FAIL") and "cannot verify" in lines[check] and ".[tflite]" in lines[check]
    assert lines["integrity"].startswith("ok") and lines["ram"].startswith("ok")  # the recorded figures still check
