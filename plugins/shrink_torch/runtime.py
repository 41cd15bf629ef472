"""torch helpers of the torch family: safe loading, batched inference, measuring, rebuilding pruned or fused
models from recorded widths, and the pass cache's state_dict save/restore."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrink import Artifact, Context, UsageError
from shrink.api.data import array_feeds, classification_scores, labelled_eval
from shrink_common.classifier import predict_feeds
from shrink_common.widths import resize_modules, set_submodule


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


def eval_accuracy(artifact: Artifact, ctx: Context) -> dict[str, Any]:
    """`accuracy` (top-1) and `brier` on the labelled eval split of classification data (empty without one, or
    when it does not fit the model's inputs), fed per input as for ONNX models (one array, or a field per input)."""
    split = labelled_eval(ctx.data)
    found = array_feeds(artifact.inputs, ctx.data, ("eval",), len(split)) if split is not None else None
    if split is None or found is None:
        return {}
    return classification_scores(predict_feeds(artifact.model, artifact.inputs, found[0]), split.labels)


# Rebuilding pruned or fused models from recorded widths (so weights load with weights_only=True) ---

def rebuild(model: torch.nn.Module, pruned_shapes: dict[str, dict[str, int]] | None,
            fused_bn: list[list[str]] | list[tuple[str, str]] | None = None) -> torch.nn.Module:
    """Re-create `model`'s (a fresh factory output) pruned / fused modules so a saved state_dict loads.

    `pruned_shapes` is `artifact.meta["pruned_shapes"]` (from `record_shapes`), `fused_bn` is
    `artifact.meta["fused_bn"]` (conv, bn) pairs: the conv gains a bias and the BN becomes Identity.
    Modifies and returns `model`; the new modules have fresh parameters, to be overwritten by
    `load_state_dict(torch.load(path, weights_only=True))`.
    """
    try:
        resize_modules(model, pruned_shapes or {})
    except KeyError as exc:
        raise UsageError(f"the model has no module {exc.args[0]!r} to resize; was it built by the same factory?") from None
    for conv_name, bn_name in fused_bn or []:
        conv = model.get_submodule(conv_name)
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(torch.zeros(conv.out_channels))
        set_submodule(model, bn_name, torch.nn.Identity())
    return model


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
