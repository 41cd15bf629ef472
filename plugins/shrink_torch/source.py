"""The `torch` model source: a factory callable plus optional weights (`weights_only=True`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shrink import Artifact, Context, PassOptions, PlanContext, Source
from shrink.api.factory import FACTORY_PATTERN, check_factory, load_factory
from shrink.api.limits import InputShape


class TorchSourceOptions(PassOptions):
    """Options of the `torch` model source."""

    factory: str = Field(pattern=FACTORY_PATTERN, description="'package.module:callable' or 'path/to/file.py:callable' returning an nn.Module")
    weights: str | None = Field(None, min_length=1, description="state_dict file, loaded with torch.load(weights_only=True)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the factory")
    input_shape: InputShape = Field(description="shape of one model input, batch first, e.g. [1, 1, 32, 32]")
    input_name: str = Field("input", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", description="name of the model input")
    input_dtype: str = Field("float32", pattern="^(float32|int64|int32)$", description="dtype of the model input")


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
        return problems

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
        inputs = [{"name": opts.input_name, "shape": list(opts.input_shape), "dtype": opts.input_dtype}]
        return Artifact(model, "torch", meta={"inputs": inputs, "factory": opts.factory})
