"""The example third-party plugin (examples/shrink-plugin-lowrank), pip-installed into a temporary directory
and used through real entry points, as a user would; its own test suite runs against that install too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shrink.testing import Result, run_subprocess
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "shrink-plugin-lowrank"
LABEL = "shrink-plugin-lowrank 0.1.0 (lowrank)"
MLP = {"source": "torch", "factory": "tiny.py:mlp", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install --target`: from a copy, so that setuptools' in-tree build leaves nothing in examples/."""
    root = tmp_path_factory.mktemp("lowrank")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(root / "site"), str(source)], check=True, capture_output=True, text=True)
    return root / "site"


def env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def shrink(site: Path, *args: str | Path) -> Result:
    return run_subprocess(*args, env=env(site))


@pytest.mark.slow
def test_plugin_pass_and_target_are_discovered(site):
    plugins = shrink(site, "plugins", "--json")
    assert plugins.code == 0, plugins.err
    row = next(p for p in plugins.json["plugins"] if p["name"] == "lowrank")
    assert (row["dist"], row["status"]) == ("shrink-plugin-lowrank", "loaded")
    assert row["provides"] == {"passes": ["compress.lowrank"], "targets": ["acme-a53-board"]}

    passes = {r["name"]: r for r in shrink(site, "passes", "--json").json["passes"]}
    assert passes["compress.lowrank"]["plugin"] == LABEL
    assert (passes["compress.lowrank"]["consumes"], passes["compress.lowrank"]["produces"]) == (["torch"], "torch")

    steps = shrink(site, "schema", "recipe").json["properties"]["passes"]["items"]["anyOf"]
    lowrank = next(s for s in steps if s.get("title") == "compress.lowrank")
    assert {"rank", "energy", "min_features", "skip", "finetune_epochs", "lr", "seed"} <= set(lowrank["properties"])
    energy, space = lowrank["properties"]["energy"]["anyOf"]  # a value, or a search space (`shrink search`)
    assert energy["exclusiveMinimum"] == 0 and space == {"$ref": "#/$defs/search"}
    assert lowrank["additionalProperties"] is False

    targets = shrink(site, "targets", "--json")
    assert {"name": "acme-a53-board", "plugin": LABEL}.items() <= next(
        t for t in targets.json["targets"] if t["name"] == "acme-a53-board").items()
    board = shrink(site, "targets", "acme-sbc53", "--json").json  # by alias
    assert board["extends"] == ["cortex-a53"] and board["profile"]["storage"]["bytes"] == 50331648
    assert board["profile"]["isa"]["arch"] == "aarch64"  # inherited

    readme_recipe = shrink(site, "plan", EXAMPLE / "recipe.json", "--json")  # the README's example recipe
    assert readme_recipe.code == 0, readme_recipe.err
    assert [p["pass"] for p in readme_recipe.json["plan"]["passes"]] == ["compress.lowrank", "export.onnx"]


@pytest.mark.slow
def test_compile_records_the_pass(site, make_recipe, tmp_path):
    recipe = make_recipe(model=MLP, target="acme-a53-board",
                         passes=[{"pass": "compress.lowrank", "rank": 8, "finetune_epochs": 1}, {"pass": "export.onnx"}])
    result = shrink(site, "compile", recipe, "-o", tmp_path / "bundle", "--json")
    assert result.code == 0, result.err
    assert result.json["verdict"] == "pass"
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    step = manifest["history"][1]
    assert (step["name"], step["plugin"]) == ("compress.lowrank", LABEL)
    details = step["details"]
    assert [layer["rank"] for layer in details["layers"]] == [8, 8]
    assert (details["params_before"], details["params_after"]) == (8970, 8970 - 2 * (4160 - 1088))
    assert details["rebuild"] == "ok" and step["metrics"]["params"] == details["params_after"]
    assert manifest["target"]["name"] == "acme-a53-board"


def test_rank_and_energy_together_is_exit_2_with_json_path(site, make_recipe):
    recipe = make_recipe(passes=[{"pass": "compress.lowrank", "rank": 4, "energy": 0.9}, {"pass": "export.onnx"}])
    result = shrink(site, "plan", recipe)
    assert result.code == 2
    assert "error: recipe.json: passes[0]: give exactly one of 'rank'" in result.err
    assert "Traceback" not in result.err
    as_json = shrink(site, "plan", recipe, "--json")
    assert as_json.code == 2 and as_json.json["errors"][0]["where"] == "recipe.json: passes[0]"


@pytest.mark.slow
def test_the_example_plugins_own_tests_pass(site, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, **env(site), "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
