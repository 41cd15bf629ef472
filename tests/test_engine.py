"""The engine's contract checks and the exactness of pass-cache keys.

A pass that modifies its input model in place is a plugin error (exit 3), for torch models and ONNX
files alike. A step's cache key hashes its plugin package with its import closure into the core and
the shared layer: editing a report, the CLI or another family keeps a cached distillation; editing
the pass's own package invalidates it.
"""

from __future__ import annotations

import json
import os
import shutil
import types
from pathlib import Path

import pytest

from shrink import Artifact, Context, Pass, PassOptions, PluginError, hookimpl
from shrink.engine.keys import code_hash
from shrink.engine.run import run_plan
from shrink.host.registry import Registry
from shrink.plan.planner import make_plan
from tests.conftest import REPO, run_subprocess

ROOT_PACKAGES = {"shrink": "shrink", "shrink_common": "plugins/shrink_common", "shrink_torch": "plugins/shrink_torch",
                 "shrink_onnx": "plugins/shrink_onnx", "shrink_huggingface": "plugins/shrink_huggingface",
                 "shrink_sklearn": "plugins/shrink_sklearn", "shrink_data": "plugins/shrink_data",
                 "shrink_profiles": "plugins/shrink_profiles",
                 "shrink_targets": "targets"}


class ScaleInPlace(Pass[PassOptions]):
    """Doubles the weights of its input model in place (breaks the contract)."""

    name = "test.scale_in_place"
    consumes = ("torch",)
    produces = "torch"

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import torch

        with torch.no_grad():
            for parameter in artifact.model.parameters():
                parameter.mul_(2)
        return artifact.evolve()


class RewriteInPlace(Pass[PassOptions]):
    """Rewrites its input ONNX file in place (breaks the contract)."""

    name = "test.rewrite_in_place"
    consumes = ("onnx",)
    produces = "onnx"

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx

        proto = onnx.load(artifact.model)
        proto.graph.name = "rewritten"
        onnx.save(proto, artifact.model)
        return artifact.evolve()


def _plugin() -> types.ModuleType:
    module = types.ModuleType("mutating_plugin")

    @hookimpl
    def shrink_register_passes() -> list[type[Pass]]:
        return [ScaleInPlace, RewriteInPlace]

    module.shrink_register_passes = shrink_register_passes  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("passes", [
    [{"pass": "test.scale_in_place"}, {"pass": "export.onnx"}],
    [{"pass": "export.onnx"}, {"pass": "test.rewrite_in_place"}],
])
def test_a_pass_that_modifies_its_input_is_a_plugin_error(make_recipe, tmp_path: Path, passes: list[dict]) -> None:
    from shrink.plan.load import load_recipe

    registry = Registry.load(extra=[("mutating", _plugin())])
    plan = make_plan(load_recipe(make_recipe(passes=passes)), registry)
    (tmp_path / "work").mkdir()
    with pytest.raises(PluginError, match="modified its input model in place") as caught:
        run_plan(plan, registry, tmp_path / "work")
    assert caught.value.exit_code == 3
    assert "test." in str(caught.value)


def test_the_closure_of_a_pass_holds_its_package_and_the_core_it_imports_but_no_report_or_other_family() -> None:
    from shrink.engine.keys import _closure
    from shrink_huggingface.tinybert import DistillTinyBERT

    modules = {name for name, _ in _closure(DistillTinyBERT.__module__)}
    assert {"shrink_huggingface.tinybert", "shrink_huggingface.heads", "shrink_common.training", "shrink.api.passes"} <= modules
    assert not [m for m in modules if m.startswith(("shrink.report", "shrink.cli", "shrink.engine", "shrink_torch", "shrink_onnx"))]


def test_code_hash_is_stable_and_differs_per_package() -> None:
    from shrink_huggingface.tinybert import DistillTinyBERT
    from shrink_torch.distill import DistillKD

    assert code_hash(DistillKD) == code_hash(DistillKD)
    assert code_hash(DistillKD) != code_hash(DistillTinyBERT)


def _copy_sources(dest: Path) -> Path:
    """The project's packages, copied flat into `dest` (importable with PYTHONPATH, ahead of the install)."""
    for name, folder in ROOT_PACKAGES.items():
        shutil.copytree(REPO / folder, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


@pytest.mark.slow
def test_editing_a_report_or_another_family_keeps_a_cached_distillation_and_editing_its_package_does_not(
        make_recipe, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    src = _copy_sources(tmp_path_factory.mktemp("src"))  # outside the recipe's folder, which the factory key hashes
    env = {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    recipe = make_recipe(passes=[{"pass": "distill.kd", "student": {"factory": "tiny.py:tiny", "kwargs": {"width": 2}},
                                  "epochs": 1}, {"pass": "export.onnx"}])

    def cached(out: str) -> list[bool]:
        result = run_subprocess("compile", recipe, "-o", tmp_path / out, env=env)
        assert result.code == 0, result.err
        manifest = json.loads((tmp_path / out / "manifest.json").read_text())
        return [step["cached"] for step in manifest["history"]]

    probe = run_subprocess(code="import shrink_torch; print(shrink_torch.__file__)", env=env)
    assert probe.out.strip().startswith(str(src)), probe.out + probe.err
    assert cached("first") == [False, False, False]
    _touch(src / "shrink" / "report" / "html.py")
    _touch(src / "shrink" / "cli" / "main.py")
    _touch(src / "shrink_huggingface" / "tinybert.py")
    _touch(src / "shrink_onnx" / "quantize.py")
    assert cached("second") == [True, True, True]
    _touch(src / "shrink_torch" / "distill.py")
    assert cached("third") == [False, False, False]  # the source's own package is shrink_torch too
