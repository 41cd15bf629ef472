"""The hooks shrink calls (entry point `lowrank` in the `shrink` group). Imports no torch."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PassOptions, PlanContext, hookimpl


class LowRankOptions(PassOptions):
    """Options of the `compress.lowrank` pass."""

    rank: Annotated[int, Field(ge=1, le=1 << 20)] | SkipJsonSchema[None] = Field(
        None, description="keep this many singular values per layer; or give 'energy'")
    energy: Annotated[float, Field(gt=0, le=1)] | SkipJsonSchema[None] = Field(
        None, description="keep the fewest singular values whose squares sum to this fraction of the total; or give 'rank'")
    min_features: int = Field(16, ge=1, le=1 << 20, description="leave layers with fewer input or output features alone")
    skip: list[str] = Field(default_factory=list, max_length=1000, description="module names never factored")
    finetune_epochs: int = Field(2, ge=0, le=1000, description="recovery fine-tune epochs on the train split (0: none)")
    lr: float = Field(3e-4, gt=0, le=10, description="fine-tune learning rate (Adam; small, so a converged model is not disturbed)")
    batch_size: int = Field(64, ge=2, le=65536, description="fine-tune batch size")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="added to the recipe seed")

    @model_validator(mode="after")
    def _exactly_one(self) -> LowRankOptions:
        if (self.rank is None) == (self.energy is None):
            raise ValueError("give exactly one of 'rank' (singular values kept per layer) and 'energy' "
                             "(fraction of the squared singular values kept)")
        return self


class LowRank(Pass[LowRankOptions]):
    """Factor Linear layers into two thinner ones by truncated SVD, then fine-tune briefly to recover."""

    name = "compress.lowrank"
    consumes = ("torch",)
    produces = "torch"

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        if opts.finetune_epochs > 0 and "data" not in plan.recipe.raw:
            return ["the recovery fine-tune needs the recipe's 'data' section (or set finetune_epochs to 0)"]
        return []

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        from shrink_lowrank.factor import lowrank  # torch is imported only from here on

        return lowrank(artifact, ctx, self.options, self.name)

@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [LowRank]


@hookimpl
def shrink_register_targets() -> list[Path]:
    return [Path(str(resources.files("shrink_lowrank").joinpath("acme-a53-board.json")))]
