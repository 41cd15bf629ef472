"""Safe loading: no arbitrary unpickling, no recipe or model code run by `verify`/`inspect`, bundle writes
that stay inside the output directory, and absurd recipes caught at plan time."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shrink.bundle.write import write_bundle
from shrink.errors import ExitCode, PluginError
from tests.test_fuzz import TINY_FACTORY, run_cli

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("shrink", "plugins", "examples", "bench", "tests")


def _torch_load_without_weights_only(path: Path) -> list[int]:
    """Line numbers of `torch.load(...)` (or a bare `load` imported from torch) lacking `weights_only=True`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bare = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module == "torch" for alias in node.names if alias.name == "load"}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_torch_load = (isinstance(func, ast.Attribute) and func.attr == "load" and isinstance(func.value, ast.Name)
                         and func.value.id == "torch") or (isinstance(func, ast.Name) and func.id in bare)
        if not is_torch_load:
            continue
        safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                   for k in node.keywords)
        if not safe:
            lines.append(node.lineno)
    return lines


def test_every_torch_load_uses_weights_only() -> None:
    offenders = []
    scanned = 0
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            scanned += 1
            offenders += [f"{path.relative_to(REPO)}:{line}" for line in _torch_load_without_weights_only(path)]
    assert scanned > 20
    assert not offenders, "torch.load without weights_only=True: " + ", ".join(offenders)


def test_the_scanner_catches_unsafe_calls(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import torch\nfrom torch import load as L\n"
                      "torch.load('a')\ntorch.load('b', weights_only=False)\n"
                      "torch.load(\n    'c',\n    map_location='cpu',\n    weights_only=True,\n)\nL('d')\n")
    assert _torch_load_without_weights_only(sample) == [3, 4, 10]


# (b) a checkpoint that needs arbitrary pickle --------------------------------------------------------

class Payload:
    """Unpickling this opens (creates) the marker file: proof that pickled code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _recipe(root: Path, **model: object) -> Path:
    (root / "tiny.py").write_text(TINY_FACTORY)
    path = root / "recipe.json"
    path.write_text(json.dumps({
        "schema_version": 1, "name": "tiny", "target": "cortex-a53",
        "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True, **model},
        "passes": [{"pass": "export.onnx"}],
    }))
    return path


def test_pickled_code_in_weights_is_refused_and_never_runs(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "PWNED"
    torch.save({"weight": torch.zeros(1), "evil": Payload(str(marker))}, tmp_path / "evil.pt")
    result = run_cli("compile", _recipe(tmp_path, weights="evil.pt"), "-o", tmp_path / "out", "--json")
    assert result.code == ExitCode.USAGE, result.err
    message = json.dumps(json.loads(result.out)["errors"])
    assert "weights_only" in message and "evil.pt" in message
    assert "never unpickles arbitrary objects" in message
    assert not marker.exists(), "the pickled payload was executed"
    assert not (tmp_path / "out").exists()


# (c) verify and inspect run no recipe or model code --------------------------------------------------

@pytest.mark.slow
def test_verify_and_inspect_never_run_the_recipe_factory(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    out = tmp_path / "bundle"
    assert run_cli("compile", recipe, "-o", out).code == 0
    marker = tmp_path / "FACTORY_RAN"
    # the factory the manifest names now leaves a marker when imported or called
    (tmp_path / "tiny.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + TINY_FACTORY)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["raw"]["model"]["factory"] == "tiny.py:tiny"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for args in (["verify", out], ["inspect", out / "model.onnx", "--shape", "input=1x1x8x8"]):
        proc = subprocess.run([sys.executable, "-m", "shrink", *map(str, args)], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "verify/inspect executed recipe code"


# (d) bundle writes stay inside the output directory ---------------------------------------------------

@pytest.mark.parametrize("name", ["../escaped.txt", "/tmp/abs.txt", "sub/x.txt", "..", ".", "manifest.json", "a\\..\\..\\b"])
def test_bundle_file_names_cannot_escape(tmp_path: Path, name: str) -> None:
    out = tmp_path / "deep" / "bundle"
    if "\\" in name and os.sep == "/":  # a backslash is an ordinary character on POSIX: stays inside
        write_bundle(out, {name: b"x"}, {})
        assert (out / name).is_file() and sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
            [name, "manifest.json"])
        return
    with pytest.raises(PluginError) as info:
        write_bundle(out, {"model.onnx": b"m", name: b"x"}, {})
    assert info.value.exit_code == ExitCode.PLUGIN and "not a plain file name" in str(info.value)
    assert not out.exists()
    assert not (tmp_path / "deep" / "escaped.txt").exists() and not Path("/tmp/abs.txt").exists()
    assert [p.name for p in (tmp_path / "deep").iterdir()] == []  # no temporaries left behind


def test_recipe_and_profile_names_cannot_escape_the_default_output(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    raw = json.loads(recipe.read_text())
    recipe.write_text(json.dumps({**raw, "name": "../../escape"}))
    assert run_cli("plan", recipe).code == 2
    recipe.write_text(json.dumps(raw))
    profile = tmp_path / "board.json"
    profile.write_text(json.dumps({"name": "../board", "extends": "cortex-a53"}))
    result = run_cli("plan", recipe, "--target", profile)
    assert result.code == 2 and "name: '../board' does not match" in result.err


# resource bounds at plan time --------------------------------------------------------------------------

def test_absurd_input_shape_is_refused_at_plan_time(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, input_shape=[1, 3, 200000, 200000])
    result = run_cli("plan", recipe, "--json")
    assert result.code == 2
    error = json.loads(result.out)["errors"][0]
    assert error["where"] == "recipe.json: model.input_shape"
    assert "1.2e+11 elements (447 GiB as float32)" in error["message"] and "2**28" in error["message"]


def test_onnx_source_input_shape_has_the_same_bound(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")  # plan does not read it
    path = tmp_path / "onnx.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "o", "target": "cortex-a53",
                                "model": {"source": "onnx", "path": "m.onnx", "input_shape": [4096, 4096, 4096]},
                                "passes": [{"pass": "fuse.ort"}]}))
    result = run_cli("plan", path)
    assert result.code == 2 and "onnx.json: model.input_shape: input_shape [4096, 4096, 4096]" in result.err


def test_largest_allowed_input_still_plans(tmp_path: Path) -> None:
    assert run_cli("plan", _recipe(tmp_path, input_shape=[1, 1, 16384, 16384])).code == 0  # exactly 2**28


@pytest.mark.parametrize("step, where", [
    ({"pass": "distill.kd", "student": {"factory": "tiny.py:tiny"}, "epochs": 1_000_000}, "passes[0].epochs"),
    ({"pass": "prune.structured", "ratio": 0.3, "finetune_epochs": 1_000_000}, "passes[0].finetune_epochs"),
    ({"pass": "distill.kd", "student": {"factory": "tiny.py:tiny"}, "batch_size": 10**12}, "passes[0].batch_size"),
])
def test_absurd_training_length_is_refused_at_plan_time(tmp_path: Path, step: dict[str, object], where: str) -> None:
    recipe = _recipe(tmp_path)
    raw = json.loads(recipe.read_text())
    raw["data"] = {"source": "sklearn.digits", "image_size": 8}
    raw["passes"] = [step, {"pass": "export.onnx"}]
    recipe.write_text(json.dumps(raw))
    result = run_cli("plan", recipe, "--json")
    assert result.code == 2
    assert [e["where"] for e in json.loads(result.out)["errors"]] == [f"recipe.json: {where}"]
