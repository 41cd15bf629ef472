"""Gates that say what they measured: loadable formats, labelled storage and RAM figures, the report's
comparisons, bundle shapes for `inspect`/`verify`, and parity at any magnitude (issue: gates fail closed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def bundle(cli, make_recipe, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    result = cli("compile", make_recipe(passes=[{"pass": "export.onnx"}, {"pass": "quantize.ptq"}]), "-o", out)
    assert result.code == 0, result.err
    return out


def test_a_format_the_target_cannot_load_is_a_plan_error_naming_what_would_work(cli, make_recipe) -> None:
    result = cli("plan", make_recipe(), "--target", "cortex-m4", "--json")
    assert result.code == 2
    (error,) = [e for e in result.json["errors"] if e["where"] == "recipe.json: passes"]
    assert "ends in an onnx model, which cortex-m4's runtime tflite-micro cannot load" in error["message"]
    assert "runtime.formats: tflite" in error["message"]
    assert "no installed pass produces tflite" in error["hint"]


def test_verify_of_an_onnx_bundle_on_a_tflite_target_fails_ops(cli, bundle: Path) -> None:
    result = cli("verify", bundle, "--target", "cortex-m7", "--json")
    assert result.code == 4
    ops = next(c for c in result.json["checks"] if c["name"] == "ops")
    assert not ops["ok"] and "tflite-micro on cortex-m7 loads tflite models, not onnx (model.onnx)" in ops["cause"]


def test_storage_and_ram_say_what_the_runtime_allowance_adds(cli, bundle: Path) -> None:
    checks = {c["name"]: c for c in cli("verify", bundle, "--json").json["checks"]}
    model = (bundle / "model.onnx").stat().st_size
    storage, ram = checks["storage"], checks["ram"]
    assert storage["ok"] and storage["value"] == model + 16 * 1024 * 1024
    assert re.search(r"^model file [\d.]+ KiB \+ onnxruntime allowance 16\.0 MiB of cortex-a53 storage 64\.0 MiB$",
                     storage["cause"]), storage["cause"]
    assert ram["ok"] and "onnxruntime allowance 32.0 MiB" in ram["cause"] and "of cortex-a53 ram" in ram["cause"]


def test_the_result_card_compares_with_the_source_and_the_previous_step(bundle: Path) -> None:
    html = re.sub(r"<[^>]+>", " ", (bundle / "report.html").read_text())
    card = html[html.index("Result"):html.index("Budgets and constraints")]
    assert "than the source model" in card  # weights and parameters: the torch source has them
    assert "than passes[0] export.onnx" in card  # the model file: the source has none, so the first file is named
    assert "than the previous step" in card


def test_operator_lists_show_dtypes(bundle: Path) -> None:
    line = next(l for l in (bundle / "report.md").read_text().splitlines() if l.startswith("- operators:"))
    assert re.search(r"DequantizeLinear \[[a-z0-9, ]+\] x\d", line) or re.search(r"QLinear\w+ \[[a-z0-9, ]+\] x\d", line), line


def test_inspect_and_verify_of_a_bundles_own_model_take_its_shapes_from_the_manifest(cli, bundle: Path) -> None:
    inspected = cli("inspect", bundle / "model.onnx", "--json")
    assert inspected.code == 0, inspected.err
    assert inspected.json["macs"] > 0
    verified = cli("verify", bundle / "model.onnx", "--target", "cortex-a53", "--json")
    assert verified.code == 0, verified.err


def test_parity_cosine_is_right_at_any_magnitude() -> None:
    from shrink_common.parity import closeness

    a = np.array([[3e-24, -1e-24, 2e-24]])
    assert closeness(a, a)["cosine"] == pytest.approx(1.0)
    assert closeness(a, a + 8e-24 * np.array([[0, 0, 1e-6]]))["cosine"] == pytest.approx(1.0)
    assert closeness(a, -a)["cosine"] == pytest.approx(-1.0)
    zero = np.zeros((1, 3))
    assert closeness(zero, zero)["cosine"] == 1.0 and closeness(zero, a)["cosine"] == 0.0


def test_the_manifest_records_the_shapes_it_pins(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["inputs"][0]["shape"] == [1, 1, 8, 8]
