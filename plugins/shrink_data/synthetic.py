"""The `random` data source: generated calibration inputs, only when a recipe asks for them.

Each input the data feeds gets samples of its own shape (from the model's declared inputs) drawn from a declared
distribution: `uniform` over a declared range [low, high) (integers for integer inputs), or `normal` with a declared
mean and standard deviation. One declaration serves every input, or each input has its own. There are no labels, so
nothing can measure accuracy: the planner refuses an `accuracy_drop` budget, and the dataset is marked random
(`meta["random"]`), which every report of the inputs' origin repeats ("calibration[:200] of random data ...").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import DataProvider, Dataset, PassOptions, PlanContext, Split, UsageError
from shrink.api.context import Context
from shrink.api.inputs import is_pinned, sample_shape
from shrink_common.samples import fed_by_data


class Distribution(PassOptions):
    """A declared distribution: `uniform` over `range`, or `normal` with `mean` and `std`."""

    distribution: Literal["uniform", "normal"] | SkipJsonSchema[None] = Field(
        None, description="'uniform' over 'range' (integers for integer inputs) or 'normal' with 'mean' and 'std'")
    range: tuple[float, float] | SkipJsonSchema[None] = Field(None, description="uniform: [low, high)")
    mean: float | SkipJsonSchema[None] = Field(None, description="normal: the mean")
    std: Annotated[float, Field(gt=0)] | SkipJsonSchema[None] = Field(None, description="normal: the standard deviation")

    @model_validator(mode="after")
    def _declared(self) -> Distribution:
        if self.distribution is None:
            if any(getattr(self, key) is not None for key in ("range", "mean", "std")):
                raise ValueError("range/mean/std describe a 'distribution'; declare it ('uniform' or 'normal')")
            return self
        if self.distribution == "uniform":
            if self.range is None or self.mean is not None or self.std is not None:
                raise ValueError("distribution 'uniform' takes 'range' [low, high) and no mean or std")
            if not self.range[0] < self.range[1]:
                raise ValueError(f"range {list(self.range)}: low must be below high")
        elif self.range is not None or self.mean is None or self.std is None:
            raise ValueError("distribution 'normal' takes 'mean' and 'std' and no range")
        return self

    def describe(self) -> str:
        if self.distribution == "uniform" and self.range is not None:
            return f"uniform [{self.range[0]:g}, {self.range[1]:g})"
        return f"normal (mean {self.mean:g}, std {self.std:g})"


class RandomOptions(Distribution):
    """Options of the `random` data source: one distribution for every input, or one per input in `inputs`."""

    inputs: dict[str, Distribution] = Field(
        default_factory=dict, description="a distribution per model input, by name (overrides the one for all)")
    count: int = Field(200, ge=1, le=100_000, description="calibration samples")
    eval_count: int = Field(64, ge=0, le=100_000, description="eval samples, drawn apart from calibration, for parity "
                                                              "checks and golden I/O (0: none)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the draws")

    @model_validator(mode="after")
    def _something_declared(self) -> RandomOptions:
        if self.distribution is None and not self.inputs:
            raise ValueError("random data needs a declared 'distribution' (with its 'range', or 'mean' and 'std'), "
                             "for all inputs or per input in 'inputs'")
        for name, spec in self.inputs.items():
            if spec.distribution is None:
                raise ValueError(f"inputs.{name}: declare its 'distribution'")
        return self

    def for_input(self, name: str) -> Distribution | None:
        return self.inputs.get(name) or (self if self.distribution is not None else None)


class RandomData(DataProvider[RandomOptions]):
    """Random calibration inputs from declared distributions (no labels: no accuracy can be measured); only when asked for."""

    name = "random"
    labels = False
    libraries = ("numpy",)

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("calibration", "eval") if self.options.eval_count else ("calibration",)

    def _problems(self, inputs: list[dict[str, Any]] | None) -> list[str]:
        opts = self.options
        if inputs is None:
            return ["random data takes its shapes from the model's inputs, which this model source does not declare "
                    "before loading; declare them in model.inputs"]
        if not fed_by_data(inputs):
            return ["every model input is fed by a declared range or constant: random data has nothing to feed"]
        names = {spec["name"] for spec in inputs}
        problems = [f"inputs: the model has no input {name!r} (its inputs: {', '.join(sorted(names))})"
                    for name in opts.inputs if name not in names]
        for spec in fed_by_data(inputs):
            found = opts.for_input(spec["name"])
            if found is None:
                problems.append(f"model input {spec['name']!r} has no declared distribution; declare one for all inputs "
                                "or for it in 'inputs'")
            elif found.distribution == "normal" and np.dtype(spec.get("dtype") or "float32").kind in "iub":
                problems.append(f"model input {spec['name']!r} takes {spec.get('dtype')}: give it a uniform 'range' of "
                                "integers, not a normal distribution")
            elif (np.dtype(spec.get("dtype") or "float32").kind in "iub" and found.range is not None
                  and np.ceil(found.range[0]) >= np.ceil(found.range[1])):
                problems.append(f"model input {spec['name']!r} takes {spec.get('dtype')}, but range {list(found.range)} "
                                "holds no integer")
            elif not is_pinned(spec):
                problems.append(f"model input {spec['name']!r} has unpinned dimensions {spec.get('shape')}: random "
                                "samples need its shape")
        return problems

    def check(self, plan: PlanContext) -> list[str]:
        return self._problems(plan.inputs)

    def _how(self, spec: Mapping[str, Any]) -> Distribution:
        found = self.options.for_input(spec["name"])
        if found is None:  # check() refused it at plan time
            raise UsageError(f"model input {spec['name']!r} has no declared distribution")
        return found

    def _describe(self, inputs: list[dict[str, Any]]) -> str:
        fed = fed_by_data(inputs)
        kinds = {self._how(spec).describe() for spec in fed}
        what = (next(iter(kinds)) if len(kinds) == 1 else
                "; ".join(f"{spec['name']}: {self._how(spec).describe()}" for spec in fed))
        return f"random data ({what}, seed {self.options.seed})"

    def fingerprint(self, ctx: Context) -> str | None:
        """The options and the shapes and dtypes of the inputs they feed."""
        digest = hashlib.sha256(self.options.model_dump_json().encode())
        digest.update(json.dumps(fed_by_data(ctx.inputs), sort_keys=True, default=str).encode())
        return "quick-" + digest.hexdigest()

    def load(self, ctx: Context) -> Dataset:
        problems = self._problems(ctx.inputs)
        if problems:
            raise UsageError(problems[0], where=f"{ctx.recipe.label}: data")
        opts = self.options
        fed = fed_by_data(ctx.inputs)
        rng = np.random.default_rng(opts.seed)
        counts = {"calibration": opts.count, "eval": opts.eval_count}
        splits = {name: Split({spec.get("field") or spec["name"]: _draw(spec, self._how(spec), counts[name], rng) for spec in fed})
                  for name in self.splits}
        meta = {"random": True, "classes": [], "distributions": {spec["name"]: self._how(spec).describe() for spec in fed},
                "sizes": {name: len(split) for name, split in splits.items()}}
        return Dataset(self._describe(ctx.inputs or []), "random", splits, str(self.fingerprint(ctx)), meta)


def _draw(spec: Mapping[str, Any], how: Distribution, count: int, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec.get("dtype") or "float32")
    shape = (count, *sample_shape(spec))
    low, high = how.range or (0.0, 1.0)
    if how.distribution == "normal":
        values = rng.normal(how.mean, how.std, shape)
    elif dtype.kind in "iub":
        values = rng.integers(int(np.ceil(low)), int(np.ceil(high)), shape)
    else:
        values = rng.uniform(low, high, shape)
    array = values.astype(dtype)
    array.setflags(write=False)
    return array
