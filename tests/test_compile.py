"""End to end: the CLI compiles a real (tiny) torch model into a verified bundle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_compile_writes_bundle_with_verifiable_manifest(cli, make_recipe, tmp_path):
    out = tmp_path / "bundle"
    result = cli("compile", make_recipe(budget={"accuracy_drop": 0.5}), "-o", out, "--json")
    assert result.code == 0, result.err
    payload = result.json  # exactly one JSON object on stdout
    assert payload["verdict"] == "pass" and payload["exit_code"] == 0 and payload["errors"] == []
    assert payload["bundle"] == str(out)
    assert {c["name"] for c in payload["checks"]} >= {"storage", "accuracy_drop"}
    for check in payload["checks"]:
        assert set(check) == {"name", "ok", "limit", "value", "unit", "cause"}

    assert sorted(p.name for p in out.iterdir()) == ["golden.npz", "manifest.json", "model.onnx", "report.html", "report.md",
                                                     "required_operators.config"]
    manifest = json.loads((out / "manifest.json").read_text())
    for name, record in manifest["files"].items():
        assert _sha256(out / name) == record["sha256"]
        assert (out / name).stat().st_size == record["size"]
    assert manifest["target"]["name"] == "cortex-a53"
    assert [s["name"] for s in manifest["history"]] == ["source:torch", "export.onnx"]
    assert manifest["history"][0]["metrics"]["accuracy"] > 0
    assert all(0 < step["metrics"]["brier"] < 2 for step in manifest["history"])  # torch and ONNX alike
    assert manifest["versions"]["torch"] and manifest["versions"]["onnx"]
    onnx.checker.check_model(str(out / "model.onnx"))
    assert "PASS" in (out / "report.md").read_text()
    assert not list(tmp_path.glob(".bundle.shrink-*")), "temporary directories left behind"


def test_recompile_replaces_existing_bundle(cli, make_recipe, tmp_path):
    out = tmp_path / "bundle"
    recipe = make_recipe()
    assert cli("compile", recipe, "-o", out).code == 0
    first = _sha256(out / "model.onnx")
    assert cli("compile", recipe, "-o", out).code == 0
    assert _sha256(out / "model.onnx") == first  # deterministic export


def test_refuses_non_bundle_output_dir(cli, make_recipe, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = cli("compile", make_recipe(), "-o", out)
    assert result.code == 2
    assert "is not empty and is not a shrink bundle" in result.err
    assert (out / "precious.txt").read_text() == "keep me"


def test_failed_budget_exits_4_and_still_writes_bundle(cli, make_recipe, tmp_path):
    out = tmp_path / "bundle"
    result = cli("compile", make_recipe(budget={"model_bytes": 100}), "-o", out, "--json")
    assert result.code == 4, result.err
    payload = result.json
    assert payload["verdict"] == "fail"
    failed = [c for c in payload["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["model_bytes"]
    assert "over the budget" in failed[0]["cause"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verdict"] == "fail"
    assert "FAIL" in (out / "report.md").read_text()


def test_storage_check_fails_on_tiny_target(cli, make_recipe, tmp_path):
    profile = tmp_path / "tiny-board.json"
    profile.write_text(json.dumps({"name": "tiny-board", "storage": {"bytes": 1024, "reserved_bytes": 24}}))
    result = cli("compile", make_recipe(), "-o", tmp_path / "b", "--target", profile, "--json")
    assert result.code == 4
    storage = next(c for c in result.json["checks"] if c["name"] == "storage")
    assert storage["ok"] is False and storage["limit"] == 1000
    assert "exceeds tiny-board storage" in storage["cause"]


def test_parity_failure_is_fatal_exit_5_no_bundle(cli, make_recipe, tmp_path):
    out = tmp_path / "bundle"
    recipe = make_recipe(passes=[{"pass": "export.onnx", "tolerance": 1e-12}])
    result = cli("compile", recipe, "-o", out, "--json")
    assert result.code == 5, result.err
    error = result.json["errors"][0]
    assert error["where"] == "recipe.json: passes[0] (export.onnx)"
    assert "differs from torch" in error["message"]
    assert "passes already run: none" in error["hint"]
    assert not out.exists()


def test_model_factory_error_is_a_pass_failure(cli, make_recipe, tmp_path):
    (tmp_path / "broken.py").write_text("def model():\n    raise ValueError('boom')\n")
    model = {"source": "torch", "factory": "broken.py:model", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}
    result = cli("compile", make_recipe(model=model), "-o", tmp_path / "b")
    assert result.code == 5
    assert "recipe.json: model: loading the model failed: ValueError: boom" in result.err
    assert "Traceback" not in result.err


def test_unsafe_weights_refused(cli, make_recipe, tmp_path):
    import argparse

    import torch

    torch.save({"x": argparse.Namespace(payload="arbitrary pickle")}, tmp_path / "evil.pt")
    model = {"source": "torch", "factory": "tiny.py:tiny", "weights": "evil.pt", "input_shape": [1, 1, 8, 8]}
    result = cli("compile", make_recipe(model=model), "-o", tmp_path / "b")
    assert result.code == 2
    assert "cannot be loaded safely (weights_only=True)" in result.err


def test_debug_shows_traceback(cli, make_recipe, tmp_path):
    result = cli("compile", make_recipe(passes=[{"pass": "export.onnx", "tolerance": 1e-12}]), "-o", tmp_path / "b", "--debug")
    assert result.code == 5
    assert "Traceback" in result.err
