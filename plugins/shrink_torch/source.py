"""The `torch` model source: a factory callable plus optional weights (`weights_only=True`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, PassOptions, PlanContext, Source
from shrink.api.factory import FACTORY_PATTERN, check_factory, load_factory
from shrink.api.inputs import InputSpec, as_meta, merge
from shrink.api.limits import InputShape


class TorchSourceOptions(PassOptions):
    """Options of the `torch` model source."""

    factory: str = Field(pattern=FACTORY_PATTERN, description="'package.module:callable' or 'path/to/file.py:callable' returning an nn.Module")
    weights: str | None = Field(None, min_length=1, description="state_dict file, loaded with torch.load(weights_only=True)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the factory")
    input_shape: InputShape | SkipJsonSchema[None] = Field(
        None, description="a model with one input: its shape, batch first, e.g. [1, 1, 32, 32]; or give 'inputs'")
    input_name: str = Field("input", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", description="name of the model input (with input_shape)")
    input_dtype: str = Field("float32", pattern="^(float32|int64|int32)$", description="dtype of the model input (with input_shape)")
    allow_random_weights: bool = Field(False, description="compile a model whose eval accuracy is within 2 points of "
                                                          "chance (untrained weights) instead of stopping with exit 2")
    inputs: list[InputSpec] | SkipJsonSchema[None] = Field(
        None, min_length=1, max_length=64, description="the model's inputs in the order forward() takes them: name, "
                                                       "shape, dtype, batch_axis and what feeds each; instead of input_shape")

    @model_validator(mode="after")
    def _one_way(self) -> TorchSourceOptions:
        if (self.input_shape is None) == (self.inputs is None):
            raise ValueError("give exactly one of 'input_shape' (one input) and 'inputs' (each input by name)")
        if self.inputs is not None:
            missing = [spec.name for spec in self.inputs if spec.shape is None]
            if missing:
                raise ValueError(f"inputs {', '.join(missing)}: a torch model's inputs need their 'shape'")
            if len({spec.name for spec in self.inputs}) != len(self.inputs):
                raise ValueError("inputs: two inputs have the same name")
        return self

    def specs(self, shapes: Mapping[str, list[int]]) -> list[dict[str, Any]]:
        """The inputs in meta form with `shapes` (--shape) applied; an unknown name is a `ValueError`."""
        declared = self.inputs or [InputSpec(name=self.input_name, shape=self.input_shape, dtype=self.input_dtype)]
        return merge([as_meta(spec) for spec in declared], [InputSpec(name=n, shape=s) for n, s in shapes.items()])


class TorchSource(Source[TorchSourceOptions]):
    """A torch.nn.Module from a `module:callable` factory, with optional state_dict weights."""

    name = "torch"
    produces = "torch"
    family = "torch"
    libraries = ("torch",)

    def check(self, plan: PlanContext) -> list[str]:
        opts = self.options
        problems = []
        problem = check_factory(opts.factory, plan.recipe.base_dir)
        if problem:
            problems.append(problem)
        if opts.weights and not plan.path(opts.weights).is_file():
            problems.append(f"weights file {str(plan.path(opts.weights))!r} does not exist")
        try:
            opts.specs(plan.shapes)
        except ValueError as exc:
            problems.append(f"--shape: {exc}")
        return problems

    @classmethod
    def claims(cls, model: str) -> dict[str, Any] | None:
        """A `file.py:callable` or `package.module:callable` factory (its input shapes come from --shape)."""
        if re.fullmatch(FACTORY_PATTERN, model) and not model.lower().endswith(".onnx"):
            return {"factory": model}
        return None

    def inputs(self, plan: PlanContext) -> list[dict[str, Any]]:
        return self.options.specs(plan.shapes)

    def load(self, ctx: Context) -> Artifact:
        from shrink_common.torch_setup import setup_torch
        from shrink_torch.runtime import load_state_dict

        opts = self.options
        setup_torch(ctx.seed)
        factory = load_factory(opts.factory, ctx.recipe.base_dir)
        model = factory(**opts.kwargs)
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"factory {opts.factory!r} returned {type(model).__name__}, not a torch.nn.Module")
        if opts.weights:
            load_state_dict(model, ctx.path(opts.weights))
        model.eval()
        return Artifact(model, "torch", meta={"inputs": opts.specs(ctx.shapes), "factory": opts.factory})
