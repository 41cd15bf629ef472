"""Plugins found through real entry points: packages pip-installed into a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_subprocess

PACKAGES = REPO / "tests" / "plugin_packages"
ALL = {"good", "raises", "wrongformat", "badhook", "broken", "conflict"}


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(PACKAGES / "test_plugins"), str(PACKAGES / "conflict")],
        check=True, capture_output=True, text=True,
    )
    return site


def shrink(site: Path, *args: str | Path, enable: set[str]) -> "Result":  # noqa: F821
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "SHRINK_DISABLE_PLUGINS": ",".join(sorted(ALL - enable))}
    return run_subprocess(*args, env=env)


def test_third_party_pass_is_described_by_passes_name(plugin_site):
    result = shrink(plugin_site, "passes", "meta.rename", "--json", enable={"good"})
    assert result.code == 0, result.err
    assert result.json["plugin"] == "shrink-test-plugins 1.0 (good)" and result.json["name"] == "meta.rename"
    assert [o["name"] for o in result.json["options"]] == list(result.json["schema"]["properties"])[1:-1]
    text = shrink(plugin_site, "passes", "meta.rename", enable={"good"})
    assert text.code == 0 and "meta.rename from shrink-test-plugins 1.0 (good)" in text.out


def test_third_party_pass_and_target_are_listed(plugin_site):
    passes = shrink(plugin_site, "passes", "--json", enable={"good"})
    assert passes.code == 0, passes.err
    rows = {r["name"]: r for r in passes.json["passes"]}
    assert rows["meta.rename"]["plugin"] == "shrink-test-plugins 1.0 (good)"
    assert rows["meta.rename"]["consumes"] == ["onnx"] and rows["meta.rename"]["produces"] == "onnx"
    assert rows["export.onnx"]["plugin"].startswith("shrink ")

    targets = shrink(plugin_site, "targets", "vendor-board", "--json", enable={"good"})
    assert targets.code == 0, targets.err
    assert targets.json["extends"] == ["cortex-a53"]
    assert targets.json["profile"]["storage"]["bytes"] == 33554432
    assert targets.json["profile"]["isa"]["arch"] == "aarch64"  # inherited

    schema = shrink(plugin_site, "schema", "recipe", enable={"good"})
    assert "meta.rename" in json.dumps(schema.json)


@pytest.mark.slow
def test_compile_with_third_party_pass(plugin_site, make_recipe, tmp_path):
    recipe = make_recipe(passes=[{"pass": "export"}, {"pass": "meta.rename", "graph_name": "plugged"}], target="vendor-board")
    result = shrink(plugin_site, "compile", recipe, "-o", tmp_path / "b", "--json", enable={"good"})
    assert result.code == 0, result.err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["history"][-1]["plugin"] == "shrink-test-plugins 1.0 (good)"
    assert manifest["target"]["name"] == "vendor-board"


def test_broken_plugin_is_reported_and_others_work(plugin_site):
    result = shrink(plugin_site, "plugins", "--json", enable={"good", "broken"})
    assert result.code == 0, result.err
    rows = {r["name"]: r for r in result.json["plugins"]}
    assert rows["broken"]["status"] == "failed"
    assert "shrink_nonexistent_dependency" in rows["broken"]["error"]
    assert rows["good"]["status"] == "loaded"
    passes = shrink(plugin_site, "passes", enable={"good", "broken"})
    assert passes.code == 0
    assert "plugin shrink-test-plugins 1.0 (broken) failed to load" in passes.err


def test_unknown_pass_mentions_failed_plugins(plugin_site, make_recipe):
    result = shrink(plugin_site, "plan", make_recipe(passes=[{"pass": "quantum.leap"}]), enable={"broken"})
    assert result.code == 2
    assert "plugins that failed to load: shrink-test-plugins 1.0 (broken)" in result.err


def test_conflict_exits_3_naming_both_and_plugins_still_shows_it(plugin_site, make_recipe):
    result = shrink(plugin_site, "plan", make_recipe(), enable={"conflict"})
    assert result.code == 3
    assert "pass 'export.onnx' is also registered by plugin" in result.err
    assert "shrink-test-conflict 2.0 (conflict)" in result.err and "shrink 0.1.0 (torch)" in result.err
    listing = shrink(plugin_site, "plugins", "--json", enable={"conflict"})
    assert listing.code == 3
    assert listing.json["conflicts"] and {r["name"] for r in listing.json["plugins"]} >= {"conflict", "torch"}


def test_misspelt_hook_fails_loudly(plugin_site):
    result = shrink(plugin_site, "passes", enable={"badhook"})
    assert result.code == 3
    assert "shrink_register_passs" in result.err
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_pass_raising_exits_5_naming_pass_and_plugin(plugin_site, make_recipe, tmp_path):
    recipe = make_recipe(passes=[{"pass": "export"}, {"pass": "test.explode"}])
    result = shrink(plugin_site, "compile", recipe, "-o", tmp_path / "b", "--json", enable={"raises"})
    assert result.code == 5
    error = result.json["errors"][0]
    assert error["where"] == "recipe.json: passes[1] (test.explode)"
    assert "RuntimeError: kaboom inside the plugin" in error["message"]
    assert "shrink-test-plugins 1.0 (raises)" in error["hint"] and "passes[0] export.onnx" in error["hint"]
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_broken_contract_is_addressed_to_plugin_author(plugin_site, make_recipe, tmp_path):
    recipe = make_recipe(passes=[{"pass": "export"}, {"pass": "test.liar"}])
    result = shrink(plugin_site, "compile", recipe, "-o", tmp_path / "b", enable={"wrongformat"})
    assert result.code == 3
    assert "plugin shrink-test-plugins 1.0 (wrongformat): pass 'test.liar' declares produces='onnx'" in result.err


def test_disable_builtins(plugin_site):
    result = shrink(plugin_site, "passes", "--json", enable={"good"} | set())
    assert result.code == 0
    env_disabled = shrink(plugin_site, "passes", "--json", enable=set())
    names = {r["name"] for r in env_disabled.json["passes"]}
    assert "meta.rename" not in names and "export.onnx" in names
