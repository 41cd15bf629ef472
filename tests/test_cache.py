"""The pass cache: what a recompile reuses, what invalidates it, and the `shrink cache` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_subprocess

TRAINING = [
    {"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 2}}, "epochs": 2},
    {"pass": "fuse.bn"},
    {"pass": "export.onnx"},
    {"pass": "quantize.ptq"},
]


def _compile(cli, recipe: Path, out: Path, *extra: str) -> dict:
    result = cli("compile", recipe, "-o", out, *extra)
    assert result.code == 0, result.err
    return json.loads((out / "manifest.json").read_text())


def _cached(manifest: dict) -> list[bool]:
    return [step["cached"] for step in manifest["history"]]


def _hashes(manifest: dict) -> dict[str, str]:
    return {name: record["sha256"] for name, record in manifest["files"].items()}


@pytest.fixture
def first(cli, make_recipe, tmp_path: Path) -> tuple[Path, dict]:
    recipe = make_recipe(passes=TRAINING)
    return recipe, _compile(cli, recipe, tmp_path / "first")


@pytest.mark.slow
def test_unchanged_recipe_is_fully_cached_and_identical(cli, first, tmp_path: Path):
    recipe, manifest = first
    assert _cached(manifest) == [False] * 5
    again = _compile(cli, recipe, tmp_path / "again")
    assert _cached(again) == [True] * 5
    assert _hashes(again) == _hashes(manifest)
    assert [s["metrics"] for s in again["history"]] == [s["metrics"] for s in manifest["history"]]
    assert again["checks"] == manifest["checks"]


@pytest.mark.slow
def test_changing_a_later_pass_reuses_the_earlier_ones(cli, first, make_recipe, tmp_path: Path):
    _, manifest = first
    changed = json.loads(json.dumps(TRAINING))
    changed[3]["calibration_samples"] = 50
    again = _compile(cli, make_recipe(passes=changed), tmp_path / "again")
    assert _cached(again) == [True, True, True, True, False]
    assert _hashes(again)["model.onnx"] != _hashes(manifest)["model.onnx"]


@pytest.mark.slow
def test_resuming_from_a_cached_torch_model(cli, first, make_recipe, tmp_path: Path):
    """export.onnx changes, so the run restores fuse.bn's torch model from its state_dict and goes on."""
    _, manifest = first
    changed = json.loads(json.dumps(TRAINING))
    changed[2]["parity_samples"] = 32
    again = _compile(cli, make_recipe(passes=changed), tmp_path / "again")
    assert _cached(again) == [True, True, True, False, False]
    # same weights in, same export out: the restored torch model is the one that was cached
    assert _hashes(again)["model.onnx"] == _hashes(manifest)["model.onnx"]


@pytest.mark.slow
def test_changed_weights_file_invalidates_everything(cli, make_recipe, tmp_path: Path):
    import torch

    namespace: dict = {}
    exec(compile((tmp_path / "tiny.py").read_text(), "tiny.py", "exec"), namespace)  # the fixture's factory
    state = namespace["tiny"]().state_dict()
    weights = tmp_path / "w.pt"
    torch.save(state, weights)
    model = {"source": "torch", "factory": "tiny.py:tiny", "weights": "w.pt", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}
    recipe = make_recipe(model=model, passes=[{"pass": "export.onnx"}])
    assert _cached(_compile(cli, recipe, tmp_path / "a")) == [False, False]
    assert _cached(_compile(cli, recipe, tmp_path / "b")) == [True, True]
    state["4.bias"] = state["4.bias"] + 0.5
    torch.save(state, weights)
    assert _cached(_compile(cli, recipe, tmp_path / "c")) == [False, False]


def test_no_cache_neither_reads_nor_writes(cli, make_recipe, tmp_path: Path):
    recipe = make_recipe()
    assert _cached(_compile(cli, recipe, tmp_path / "a", "--no-cache")) == [False, False]
    info = cli("cache", "info", "--json")
    assert info.code == 0 and info.json["entries"] == 0
    _compile(cli, recipe, tmp_path / "b")
    assert _cached(_compile(cli, recipe, tmp_path / "c", "--no-cache")) == [False, False]


def test_cache_info_and_clear(cli, make_recipe, tmp_path: Path, private_pass_cache: Path):
    _compile(cli, make_recipe(), tmp_path / "a")
    info = cli("cache", "info", "--json").json
    assert info["path"] == str(private_pass_cache)
    assert info["entries"] == 3 and info["by_pass"] == {"export.onnx": 1, "golden": 1, "source:torch": 1}
    assert info["bytes"] > 0
    cleared = cli("cache", "clear", "--json")
    assert cleared.code == 0 and cleared.json["removed"] == 3
    assert cli("cache", "info", "--json").json["entries"] == 0


@pytest.mark.slow
def test_debug_explains_each_miss(first, make_recipe, tmp_path: Path):
    changed = json.loads(json.dumps(TRAINING))
    changed[0]["epochs"] = 1
    result = run_subprocess("compile", make_recipe(passes=changed), "-o", tmp_path / "again", "--debug")
    assert result.code == 0, result.err
    assert "cache miss for passes[0] distill.kd: changed since the last compile: options (epochs)" in result.err


def test_unwritable_cache_does_not_fail_the_compile(cli, make_recipe, tmp_path: Path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SHRINK_CACHE_DIR", str(blocker))
    assert _cached(_compile(cli, make_recipe(), tmp_path / "a")) == [False, False]


def test_editing_a_module_the_factory_imports_invalidates(cli, make_recipe, tmp_path: Path):
    (tmp_path / "blocks.py").write_text("from torch import nn\n\n\ndef act():\n    return nn.ReLU()\n")
    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\nfrom blocks import act\n\n\n"
        "def build():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), act(), nn.Linear(16, 10))\n")
    model = {"source": "torch", "factory": "net.py:build", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}
    recipe = make_recipe(model=model)
    assert _cached(_compile(cli, recipe, tmp_path / "a")) == [False, False]
    assert _cached(_compile(cli, recipe, tmp_path / "b")) == [True, True]
    (tmp_path / "blocks.py").write_text("from torch import nn\n\n\ndef act():\n    return nn.Tanh()\n")
    assert _cached(_compile(cli, recipe, tmp_path / "c")) == [False, False]


@pytest.mark.slow
def test_a_damaged_entry_reruns_the_step(cli, first, make_recipe, tmp_path: Path, private_pass_cache: Path):
    for weights in private_pass_cache.rglob("weights.pt"):
        weights.write_bytes(b"truncated")
    changed = json.loads(json.dumps(TRAINING))
    changed[2]["parity_samples"] = 16  # export changes: the torch steps before it must be restored
    again = _compile(cli, make_recipe(passes=changed), tmp_path / "again")
    assert again["verdict"] == "pass"
    assert _cached(again)[-2:] == [False, False]


def test_unfollowable_option_values_are_not_files(tmp_path: Path):
    from shrink.engine.keys import referenced_files

    (tmp_path / "w.bin").write_bytes(b"x")
    found = referenced_files({"a": "~nosuchuser-xyz/w", "b": "nosuchpkg_xyz.mod:fn", "c": ["w.bin", 3]},
                             lambda value: (tmp_path / Path(value).expanduser()).resolve())
    assert list(found) == ["w.bin"]


def test_sweep_removes_only_dead_compiles_temporaries(tmp_path):
    import os

    from shrink.engine.cache import _sweep

    dead, alive, entry = tmp_path / ".abcdef012345-999999999-x", tmp_path / f".abcdef012345-{os.getpid()}-x", tmp_path / "abcdef012345"
    for path in (dead, alive, entry):
        path.mkdir()
    _sweep(tmp_path)
    assert not dead.exists() and alive.exists() and entry.exists()
