"""Options every file-based data source shares: where the samples are, and how the splits are made."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import PassOptions

SPLITS = ("train", "calibration", "eval")

# a count (an int) or a fraction (a float strictly between 0 and 1)
Size = Annotated[int, Field(ge=0, le=10_000_000)] | Annotated[float, Field(gt=0, lt=1)]


class SplitOptions(PassOptions):
    """One set of samples (`path`), cut into train / calibration / eval by seed; or each split declared."""

    path: str | SkipJsonSchema[None] = Field(
        None, min_length=1, description="one set of samples (relative to the recipe); eval and calibration are cut "
                                        "from it by 'seed' (stratified by class when labelled)")
    train: str | SkipJsonSchema[None] = Field(None, min_length=1, description="the train split, declared")
    calibration: str | SkipJsonSchema[None] = Field(
        None, min_length=1, description="the calibration split, declared (default: 'calibration_size' samples of train)")
    eval: str | SkipJsonSchema[None] = Field(None, min_length=1, description="the eval split, declared")
    eval_size: Size = Field(0.2, description="with 'path': held out for eval, a fraction or a count (0: no eval split)")
    calibration_size: Size = Field(200, description="calibration samples taken from train (at most this many, or "
                                                    "this fraction of train), unless 'calibration' is declared")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the split cut (and of the sample order)")

    @model_validator(mode="after")
    def _one_layout(self) -> SplitOptions:
        declared = [name for name in SPLITS if getattr(self, name) is not None]
        if (self.path is None) == (not declared):
            raise ValueError("give either 'path' (one set, split by seed) or the splits themselves "
                             "('train', 'calibration', 'eval')")
        if declared and "eval_size" in self.model_fields_set:
            raise ValueError("eval_size applies to 'path'; the declared splits keep all their samples")
        if "calibration_size" in self.model_fields_set and (self.calibration is not None or (declared and self.train is None)):
            raise ValueError("calibration_size takes calibration samples from train; "
                             + ("'calibration' is declared" if self.calibration is not None else "no train split is declared"))
        if self.calibration_size == 0:
            raise ValueError("calibration_size must be at least 1")
        return self

    def declared(self) -> dict[str, str]:
        """The recipe paths of the declared splits, or `{"all": path}` for one set to cut."""
        if self.path is not None:
            return {"all": self.path}
        return {name: value for name in SPLITS if (value := getattr(self, name)) is not None}

    def split_names(self) -> tuple[str, ...]:
        """The splits the dataset has."""
        if self.path is not None:
            return ("train", "calibration", "eval") if self.eval_size else ("train", "calibration")
        names = set(self.declared())
        if "train" in names:
            names.add("calibration")
        return tuple(name for name in SPLITS if name in names)
