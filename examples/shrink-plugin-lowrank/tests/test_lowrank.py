"""compress.lowrank and the acme-a53-board profile, tested with shrink's pytest plugin (`shrink.testing`).

The unit tests hand the plugin module to shrink directly; the CLI tests need the plugin installed
(`pip install -e .`), as a user would have it.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shrink.testing import check_pass_contract
from shrink_lowrank import plugin
from shrink_lowrank.plugin import LowRank

MLP = {"source": "torch", "factory": "tiny.py:mlp", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}  # Linear 64→64→64→10


def test_declarations_follow_the_pass_contract():
    check_pass_contract(LowRank, options={"energy": 0.9})


@pytest.mark.parametrize("options", [{}, {"rank": 4, "energy": 0.9}])
def test_exactly_one_of_rank_and_energy(options):
    with pytest.raises(ValidationError, match="exactly one of 'rank'"):
        LowRank.Options(**options)


def test_factors_large_linear_layers_only(make_recipe, make_pass_input):
    recipe = make_recipe(model=MLP, passes=[{"pass": "compress.lowrank", "rank": 8}, {"pass": "export.onnx"}])
    given = make_pass_input(recipe, before=0, plugins=[("lowrank", plugin)])
    result = check_pass_contract(LowRank, given.artifact, given.ctx, options={"rank": 8, "finetune_epochs": 1})
    details = result.details
    assert [layer["name"] for layer in details["layers"]] == ["1", "3"]
    assert details["skipped"] == {"5": "fewer than 16 features"}
    assert details["params_before"] == 8970 and details["params_after"] == 8970 - 2 * (4160 - (512 + 512 + 64))
    assert details["rebuild"] == "ok"
    assert dict(result.meta["lowrank"]["3"]) == {"in": 64, "out": 64, "rank": 8, "bias": True}


def test_rank_that_saves_nothing_is_skipped(make_recipe, make_pass_input):
    recipe = make_recipe(model=MLP, passes=[{"pass": "compress.lowrank", "energy": 1.0}, {"pass": "export.onnx"}])
    given = make_pass_input(recipe, plugins=[("lowrank", plugin)])
    result = check_pass_contract(LowRank, given.artifact, given.ctx, options={"energy": 1.0, "finetune_epochs": 0})
    assert result.details["layers"] == [] and "saves no parameters" in result.details["skipped"]["1"]


def test_installed_plugin_is_listed(cli):
    passes = {row["name"]: row for row in cli("passes", "--json").json["passes"]}
    assert passes["compress.lowrank"]["plugin"].startswith("shrink-plugin-lowrank ")
    target = cli("targets", "acme-a53-board", "--json")
    assert target.code == 0, target.err
    assert target.json["extends"] == ["cortex-a53"] and target.json["profile"]["clock_mhz"] == 1200


def test_both_rank_and_energy_is_a_recipe_error(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "compress.lowrank", "rank": 4, "energy": 0.9}, {"pass": "export"}]))
    assert result.code == 2
    assert "recipe.json: passes[0]: give exactly one of 'rank'" in result.err and "Traceback" not in result.err


def test_compiles_for_the_vendor_board(cli, make_recipe, tmp_path):
    recipe = make_recipe(model=MLP, target="acme-a53-board",
                         passes=[{"pass": "compress.lowrank", "rank": 8, "finetune_epochs": 1}, {"pass": "export.onnx"}])
    result = cli("compile", recipe, "-o", tmp_path / "bundle", "--json")
    assert result.code == 0, result.err
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    step = manifest["history"][1]
    assert step["name"] == "compress.lowrank" and step["plugin"].startswith("shrink-plugin-lowrank ")
    assert step["details"]["params_after"] < step["details"]["params_before"]
    assert manifest["target"]["name"] == "acme-a53-board"
