"""`shrink verify` as a CI gate and `shrink inspect` as a report, on real compiled bundles."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture
def bundle(cli, make_recipe, tmp_path):
    out = tmp_path / "bundle"
    assert cli("compile", make_recipe(budget={"accuracy_drop": 0.5}), "-o", out).code == 0
    return out


def test_clean_bundle_verifies(cli, bundle):
    result = cli("verify", bundle, "--json")
    assert result.code == 0, result.err
    names = [c["name"] for c in result.json["checks"]]
    assert names[0] == "integrity" and {"storage", "ram", "ops", "latency", "accuracy_drop"} <= set(names)
    assert result.json["target"] == "cortex-a53"


def test_tampered_model_is_exit_4_naming_the_file(cli, bundle):
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    result = cli("verify", bundle, "--json")
    assert result.code == 4
    integrity = result.json["checks"][0]
    assert integrity["name"] == "integrity" and not integrity["ok"]
    assert "model.onnx does not match its sha256" in integrity["cause"]


def test_truncated_model_is_still_exit_4(cli, bundle):
    (bundle / "model.onnx").write_bytes(b"\x08\x07garbage")
    assert cli("verify", bundle).code == 4


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_missing_or_extra_file(cli, bundle, change):
    if change == "missing":
        (bundle / "report.md").unlink()
    else:
        (bundle / "notes.txt").write_text("hi")
    result = cli("verify", bundle, "--json")
    assert result.code == 4
    assert f"{change} file" in result.json["checks"][0]["cause"]


def test_unreadable_manifest_is_exit_2(cli, bundle):
    (bundle / "manifest.json").write_text("{not json")
    result = cli("verify", bundle)
    assert result.code == 2 and "manifest.json cannot be read" in result.err


def test_not_a_bundle_and_missing_path(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli("verify", tmp_path / "empty").code == 2
    assert cli("verify", tmp_path / "nope").code == 2


def test_other_target_and_budget_override(cli, bundle):
    result = cli("verify", bundle, "--target", "x86-64-avx2", "--budget", "macs=10", "--json")
    assert result.code == 4
    macs = next(c for c in result.json["checks"] if c["name"] == "macs")
    assert not macs["ok"] and macs["limit"] == 10 and macs["value"] > 10
    assert cli("verify", bundle, "--budget", "macs=1.5").code == 2


def test_model_too_large_for_m4_fails_there_and_passes_on_a53(cli, tmp_path):
    from tests.conftest import REPO

    out = tmp_path / "digits"
    recipe = json.loads((REPO / "recipes" / "digits-cnn.json").read_text())
    recipe["passes"] = [{"pass": "export.onnx"}]
    recipe["model"]["factory"] = str(REPO / "examples/digits/model.py") + ":teacher"
    recipe["model"]["weights"] = str(REPO / "examples/digits/teacher.pt")
    path = tmp_path / "digits.json"
    path.write_text(json.dumps(recipe))
    assert cli("compile", path, "-o", out).code == 0
    assert cli("verify", out, "--target", "cortex-a53").code == 0
    result = cli("verify", out, "--target", "cortex-m4", "--json")
    assert result.code == 4
    failed = {c["name"]: c for c in result.json["checks"] if not c["ok"]}
    assert {"ram", "ops"} <= set(failed)
    assert "exceeds cortex-m4 sram" in failed["ram"]["cause"] and "activations peak at node" in failed["ram"]["cause"]
    assert failed["ram"]["value"] > failed["ram"]["limit"]
    assert "Conv" in failed["ops"]["cause"]


def test_bare_model_needs_target_and_shape(cli, bundle, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(bundle / "model.onnx", model)
    assert cli("verify", model).code == 2
    unpinned = cli("verify", model, "--target", "cortex-a53")
    assert unpinned.code == 2 and "--shape" in unpinned.err
    assert cli("verify", model, "--target", "cortex-a53", "--shape", "input=1x1x8x8").code == 0


def test_bare_file_that_is_not_onnx(cli, tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_text("hello")
    result = cli("verify", bogus, "--target", "cortex-a53")
    assert result.code == 2 and "Traceback" not in result.err


def test_inspect_reports_and_never_gates(cli, bundle):
    result = cli("inspect", bundle / "model.onnx", "--shape", "input=1x1x8x8", "--target", "cortex-m4", "--json")
    assert result.code == 0
    data = result.json
    for key in ("params", "weight_bytes", "macs", "peak_activation_bytes"):
        assert isinstance(data[key], int) and data[key] > 0
    assert {"domain", "op_type", "opset", "dtypes", "count"} <= set(data["ops"][0])
    assert any(not c["ok"] for c in data["checks"])  # reported, still exit 0
    human = cli("inspect", bundle / "model.onnx", "--shape", "input=1x1x8x8")
    assert human.code == 0 and "MACs" in human.out


def test_bundle_has_reduced_build_operator_config(bundle):
    config = (bundle / "required_operators.config").read_text().splitlines()
    assert any(line.startswith("ai.onnx;17;") and "Conv" in line for line in config)
