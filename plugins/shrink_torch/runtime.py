"""torch helpers of the torch family: safe loading, batched inference, measuring, rebuilding pruned or fused
models from recorded widths, and the pass cache's state_dict save/restore."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrink import Artifact, Context, UsageError
from shrink.api.data import array_feeds, labelled_eval, rows, to_model, top1
from shrink.api.inputs import batch_axis


def load_state_dict(model: torch.nn.Module, path: Path) -> None:
    """Load weights with `weights_only=True`; anything needing arbitrary pickle is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"weights file {str(path)!r} does not exist") from None
    except Exception as exc:
        raise UsageError(
            f"weights file {str(path)!r} cannot be loaded safely (weights_only=True): {str(exc).splitlines()[0]}",
            hint="save a plain state_dict (torch.save(model.state_dict(), path)); shrink never unpickles arbitrary objects",
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise UsageError(f"weights {str(path)!r} do not match the model: {' '.join(line.strip() for line in first[:3])}") from None


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    outs = []
    for start in range(0, len(inputs), batch_size):
        outs.append(model(torch.tensor(np.asarray(inputs[start:start + batch_size]))).float().numpy())
    return np.concatenate(outs)


@torch.no_grad()
def predict_feeds(model: torch.nn.Module, specs: list[dict[str, Any]], feeds: dict[str, np.ndarray],
                  batch_size: int = 256) -> np.ndarray:
    """The model's (first) output for sample-major feeds, called with its inputs in declared order, in batches
    laid out per input (one sample at a time when an input has no batch axis)."""
    model.eval()
    step = 1 if any(batch_axis(spec) is None for spec in specs) else batch_size
    outs = []
    for start in range(0, rows(feeds), step):
        batch = to_model(specs, feeds, start, start + step)
        out = model(*(torch.from_numpy(np.ascontiguousarray(batch[spec["name"]])) for spec in specs))
        out = out[0] if isinstance(out, (tuple, list)) else out
        outs.append(np.atleast_1d(out.float().numpy()))
    return np.concatenate(outs)


def eval_accuracy(artifact: Artifact, ctx: Context) -> dict[str, Any]:
    """`accuracy`: top-1 on the labelled eval split of classification data (empty without one, or when it does not
    fit the model's inputs), fed per input as for ONNX models (one array, or a field per input)."""
    split = labelled_eval(ctx.data)
    found = array_feeds(artifact.inputs, ctx.data, ("eval",), len(split)) if split is not None else None
    if split is None or found is None:
        return {}
    return {"accuracy": top1(predict_feeds(artifact.model, artifact.inputs, found[0]), split.labels)}


# Rebuilding pruned or fused models from recorded widths (so weights load with weights_only=True) ---

def set_submodule(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    """Replace the submodule at dotted path `name` (works inside nn.Sequential / ModuleList too)."""
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


def record_shapes(model: torch.nn.Module) -> dict[str, dict[str, int]]:
    """The widths of every Conv, Linear, BatchNorm and 1-D LayerNorm: `{name: {"in", "out"[, "groups"]}}`."""
    nn = torch.nn
    shapes: dict[str, dict[str, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            shapes[name] = {"in": module.in_channels, "out": module.out_channels, "groups": module.groups}
        elif isinstance(module, nn.Linear):
            shapes[name] = {"in": module.in_features, "out": module.out_features}
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            shapes[name] = {"in": module.num_features, "out": module.num_features}
        elif isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
            shapes[name] = {"in": module.normalized_shape[0], "out": module.normalized_shape[0]}
    return shapes


def _resized(module: torch.nn.Module, spec: dict[str, int]) -> torch.nn.Module:
    nn = torch.nn
    cin, cout = int(spec["in"]), int(spec["out"])
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return type(module)(cin, cout, module.kernel_size, stride=module.stride, padding=module.padding,
                            output_padding=module.output_padding, groups=int(spec.get("groups", module.groups)),
                            bias=module.bias is not None, dilation=module.dilation, padding_mode=module.padding_mode)
    if isinstance(module, nn.modules.conv._ConvNd):
        return type(module)(cin, cout, module.kernel_size, stride=module.stride, padding=module.padding,
                            dilation=module.dilation, groups=int(spec.get("groups", module.groups)),
                            bias=module.bias is not None, padding_mode=module.padding_mode)
    if isinstance(module, nn.Linear):
        return type(module)(cin, cout, bias=module.bias is not None)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return type(module)(cout, eps=module.eps, momentum=module.momentum, affine=module.affine,
                            track_running_stats=module.track_running_stats)
    if isinstance(module, nn.LayerNorm):
        return type(module)(cout, eps=module.eps, elementwise_affine=module.elementwise_affine,
                            bias=getattr(module, "bias", None) is not None)
    raise TypeError(f"cannot resize a {type(module).__name__}")


def rebuild(model: torch.nn.Module, pruned_shapes: dict[str, dict[str, int]] | None,
            fused_bn: list[list[str]] | list[tuple[str, str]] | None = None) -> torch.nn.Module:
    """Re-create `model`'s (a fresh factory output) pruned / fused modules so a saved state_dict loads.

    `pruned_shapes` is `artifact.meta["pruned_shapes"]` (from `record_shapes`), `fused_bn` is
    `artifact.meta["fused_bn"]` (conv, bn) pairs: the conv gains a bias and the BN becomes Identity.
    Modifies and returns `model`; the new modules have fresh parameters, to be overwritten by
    `load_state_dict(torch.load(path, weights_only=True))`.
    """
    for name, spec in (pruned_shapes or {}).items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise UsageError(f"the model has no module {name!r} to resize; was it built by the same factory?") from None
        current = record_shapes_of(old)
        if current != {k: int(v) for k, v in spec.items() if k in current}:
            set_submodule(model, name, _resized(old, spec))
    for conv_name, bn_name in fused_bn or []:
        conv = model.get_submodule(conv_name)
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(torch.zeros(conv.out_channels))
        set_submodule(model, bn_name, torch.nn.Identity())
    return model


def record_shapes_of(module: torch.nn.Module) -> dict[str, int]:
    """`record_shapes` for one module ({} for a module without recorded widths)."""
    wrapper = torch.nn.Module()
    wrapper.add_module("m", module)
    return record_shapes(wrapper).get("m", {})


# The pass cache: a torch model is saved as its state_dict and restored through its factory ---------

def factory_model(meta: Any, ctx: Context) -> torch.nn.Module | None:
    """A fresh model from the artifact's recorded factory, with pruned widths and fused BNs re-applied."""
    from shrink.api.factory import load_factory

    spec = meta.get("factory")
    if not spec:
        return None
    kwargs = meta.get("factory_kwargs")
    if kwargs is None:
        section = ctx.recipe.raw.get("model", {})
        kwargs = section.get("kwargs", {}) if section.get("factory") == spec else {}
    with torch.random.fork_rng(devices=[]):  # factories may reseed; the compile's RNG stream must not change
        state = random.getstate(), np.random.get_state()
        try:
            model = load_factory(spec, ctx.recipe.base_dir)(**dict(kwargs))
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
    return rebuild(model, meta.get("pruned_shapes"), meta.get("fused_bn"))


def save_model(artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
    """Save the state_dict when the factory rebuilds exactly this architecture, else None (not cached)."""
    model: torch.nn.Module = artifact.model
    fresh = factory_model(artifact.meta, ctx)
    if fresh is None or str(fresh) != str(model):
        return None
    state = model.state_dict()
    if {k: tuple(v.shape) for k, v in state.items()} != {k: tuple(v.shape) for k, v in fresh.state_dict().items()}:
        return None
    torch.save(state, directory / "weights.pt")
    return {"kind": "state_dict", "file": "weights.pt", "training": model.training}


def restore_model(descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> torch.nn.Module:
    model = factory_model(meta, ctx)
    if model is None:
        raise UsageError("the cached torch model records no factory")
    load_state_dict(model, directory / descriptor["file"])
    return model.train(bool(descriptor.get("training", False)))
