"""Broken models and bundles through `inspect` and `verify`: exit 2 (bad input) or 4 (integrity), a precise
message, never a traceback or a hang. Cases already covered by test_analysis.py / test_verify.py
(garbage and truncated files at the API level, tampered/missing/extra bundle files, '{not json'
manifests) are not repeated here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.test_fuzz import TINY_FACTORY, run_cli

TIMEOUT = 120  # seconds: a hang is a failure, not a stuck CI job


def _shrink(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shrink", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT)


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any] = (), opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _vi(name: str, shape: list[Any] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _conv(opset: int = 17, batch: Any = 1) -> onnx.ModelProto:
    import numpy as np

    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [_vi("x", [batch, 1, 8, 8])],
                  [_vi("y", [batch, 2, 6, 6])], [w], opset)


BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "file is empty"),
    "text": (lambda: b"I am not an ONNX model\n", "not an ONNX model"),
    "truncated": (lambda: _conv().SerializeToString()[:40], "not an ONNX model or truncated"),
    "dangling input": (lambda: _model([helper.make_node("Relu", ["x"], ["h"], name="r1"),
                                       helper.make_node("Add", ["h", "ghost"], ["y"], name="add")],
                                      [_vi("x", [1, 4])], [_vi("y", [1, 4])]).SerializeToString(),
                       "node 'add' input 'ghost' is produced by no node"),
    "missing initializer": (lambda: _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                                           [_vi("x", [1, 1, 8, 8])], [_vi("y", None)]).SerializeToString(),
                            "node 'conv' input 'w' is produced by no node"),
    "unknown opset": (lambda: _conv(opset=99).SerializeToString(), "imports ai.onnx opset 99, which does not exist"),
    "dynamic batch, no --shape": (lambda: _conv(batch="n").SerializeToString(), "dim 0 ('n') is not fixed: pass --shape x="),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_broken_model_is_exit_2_with_a_precise_message(tmp_path: Path, case: str, command: str) -> None:
    data, message = BROKEN[case]
    path = tmp_path / "model.onnx"
    path.write_bytes(data())
    extra = ["--target", "cortex-a53"] if command == "verify" else []
    result = run_cli(command, path, *extra, "--json")
    assert result.code == 2, (case, result.err)
    assert "Traceback" not in result.out + result.err
    errors = json.loads(result.out)["errors"] if command == "verify" else None
    assert message in result.err, (case, result.err)
    if errors is not None:
        assert errors[0]["where"].endswith("model.onnx") and message in errors[0]["message"]


@pytest.mark.slow
def test_broken_models_in_a_real_process_do_not_hang_or_trace(tmp_path: Path) -> None:
    for case in ("truncated", "unknown opset", "dynamic batch, no --shape"):
        path = tmp_path / f"{case.split()[0]}.onnx"
        path.write_bytes(BROKEN[case][0]())
        for args in (["inspect", path], ["verify", path, "--target", "cortex-a53"]):
            proc = _shrink(*args)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, (case, proc.stderr)
            assert BROKEN[case][1] in proc.stderr


def test_directory_and_missing_model(tmp_path: Path) -> None:
    assert run_cli("inspect", tmp_path).code == 2
    result = run_cli("inspect", tmp_path / "nope.onnx")
    assert result.code == 2 and "no such file" in result.err


# bundles -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    (root / "tiny.py").write_text(TINY_FACTORY)
    recipe = root / "recipe.json"
    recipe.write_text(json.dumps({"schema_version": 1, "name": "tiny", "target": "cortex-a53",
                                  "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
                                  "passes": [{"pass": "export.onnx"}]}))
    result = run_cli("compile", recipe, "-o", root / "b")
    assert result.code == 0, result.err
    return root / "b"


@pytest.fixture
def copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    return out


def _edit_manifest(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        obj = manifest
        for key in keys[:-1]:
            obj = obj[key]
        obj[keys[-1]] = value
    return change


@pytest.mark.parametrize("change, where, message", [
    (_set("model", value=[]), "model", "is not of type 'object'"),
    (_set("model", "file", value="../b/model.onnx"), "model.file", "does not match"),
    (_set("model", "file", value="report.md.missing"), "model.file", "is not one of the files the manifest records"),
    (_set("recipe", "raw", value=[]), "recipe.raw", "is not of type 'object'"),
    (_set("recipe", "raw", "budget", value={"macs": "many"}), "recipe.raw.budget.macs", "is not of type 'integer'"),
    (_set("history", value=[1]), "history[0]", "is not of type 'object'"),
    (_set("metrics", value=[1]), "metrics", "is not of type 'object'"),
    (_set("target", value="cortex-a53"), "target", "is not of type 'object'"),
    (_set("model", "inputs", value=5), "model.inputs", "is not of type 'array'"),
    (_set("files", "../outside", value={"sha256": "0", "size": 1}), "files", "does not match"),
])
def test_structurally_broken_manifest_is_exit_2(copy: Path, change: Callable[[dict[str, Any]], None], where: str,
                                                message: str) -> None:
    _edit_manifest(copy, change)
    result = run_cli("verify", copy, "--json")
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    error = json.loads(result.out)["errors"][0]
    assert error["where"] == f"{copy / 'manifest.json'}: {where}" and message in error["message"], error


@pytest.mark.parametrize("content", [b"", b"[]", b"\xff\xfe\x00\x01", b'{"kind": "something-else", "files": {}}',
                                     b'{"kind": "shrink-bundle", "files": []}'])
def test_unreadable_or_foreign_manifest_is_exit_2(copy: Path, content: bytes) -> None:
    (copy / "manifest.json").write_bytes(content)
    result = run_cli("verify", copy)
    assert result.code == 2 and "Traceback" not in result.err
    assert "manifest.json" in result.err


def test_manifest_that_is_a_directory(copy: Path) -> None:
    (copy / "manifest.json").unlink()
    (copy / "manifest.json").mkdir()
    result = run_cli("verify", copy)
    assert result.code == 2 and "no manifest.json" in result.err


@pytest.mark.parametrize("alter", ["truncate", "swap", "replace-with-dir", "extra-dir"])
def test_altered_bundle_is_integrity_exit_4(copy: Path, alter: str) -> None:
    model = copy / "model.onnx"
    if alter == "truncate":
        model.write_bytes(b"")
    elif alter == "swap":  # the report's bytes under the model's name: sizes and hashes both differ
        shutil.copy(copy / "report.md", model)
    elif alter == "replace-with-dir":
        model.unlink()
        model.mkdir()
    else:
        (copy / "sub").mkdir()
    result = run_cli("verify", copy, "--json")
    assert result.code == 4, result.err
    integrity = json.loads(result.out)["checks"][0]
    assert integrity["name"] == "integrity" and not integrity["ok"]
    assert ("model.onnx" in integrity["cause"]) or ("extra file sub" in integrity["cause"])


def test_verify_of_altered_bundle_in_a_real_process(copy: Path) -> None:
    (copy / "report.md").write_text("edited")
    proc = _shrink("verify", copy)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "report.md does not match its sha256" in proc.stdout + proc.stderr
