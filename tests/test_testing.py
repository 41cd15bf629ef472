"""shrink.testing, the pytest plugin for plugin authors: its contract checker catches broken passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shrink import Artifact, Context, Pass, PassOptions
from shrink.testing import ContractError, check_pass_contract

MLP = {"source": "torch", "factory": "tiny.py:mlp", "input_shape": [1, 1, 8, 8], "allow_random_weights": True}


class Scale(Pass):
    """Scale every weight by a factor (torch → torch), on a copy."""

    name = "test.scale"
    consumes = ("torch",)
    produces = "torch"

    class Options(PassOptions):
        factor: float = 0.5

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import torch

        model = copy.deepcopy(artifact.model)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(self.options.factor)  # type: ignore[attr-defined]
        return artifact.evolve(model=model, details={"factor": self.options.factor})  # type: ignore[attr-defined]


class InPlace(Scale):
    """Scales the input's weights in place (breaks the contract)."""

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import torch

        with torch.no_grad():
            next(artifact.model.parameters()).mul_(2.0)
        return artifact.evolve()


class WrongFormat(Scale):
    """Says torch but returns onnx."""

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        return artifact.evolve(format="onnx")


class Undocumented(Scale):
    pass


Undocumented.__doc__ = None


def test_declarations():
    check_pass_contract(Scale, options={"factor": 2.0})

    class BadName(Scale):
        """Bad name."""

        name = "Scale"

    with pytest.raises(ContractError, match="must look like '<kind>.<impl>'"):
        check_pass_contract(BadName)
    with pytest.raises(ContractError, match="has no docstring"):
        check_pass_contract(Undocumented)
    with pytest.raises(ContractError, match="do not validate"):
        check_pass_contract(Scale, options={"factor": "big", "extra": 1})


def test_runs_and_catches_mutation_and_wrong_format(make_recipe, make_pass_input):
    given = make_pass_input(make_recipe(model=MLP))
    result: Any = check_pass_contract(Scale, given.artifact, given.ctx)
    assert result.details["factor"] == 0.5 and result.format == "torch"
    with pytest.raises(ContractError, match="declares produces='torch' but returned a 'onnx' artifact"):
        check_pass_contract(WrongFormat, given.artifact, given.ctx)
    with pytest.raises(ContractError, match="mutated its input artifact"):
        check_pass_contract(InPlace, given.artifact, given.ctx)


def test_pass_input_runs_earlier_passes(make_recipe, make_pass_input):
    recipe = make_recipe(model=MLP, passes=[{"pass": "export.onnx"}])
    given = make_pass_input(recipe, before=1)
    assert given.artifact.format == "onnx" and [s.name for s in given.artifact.history] == ["source:torch", "export.onnx"]
    with pytest.raises(ValueError, match="the recipe has 1 passes"):
        make_pass_input(recipe, before=2)


def test_tiny_target_is_a_usable_profile(cli, make_recipe, tiny_target, make_target):
    result = cli("plan", make_recipe(), "--target", tiny_target, "--json")
    assert result.code == 0, result.err
    assert result.json["plan"]["target"] == "tiny-board"
    broken = cli("plan", make_recipe(), "--target", make_target("broken.json", storage={"bytes": -1}))
    assert broken.code == 2 and "broken.json" in broken.err
