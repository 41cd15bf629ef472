"""The torch side of `compress.lowrank`; imported only from `LowRank.run()`.

A Linear `W [out, in]` becomes `Sequential(Linear(in, r, bias=False), Linear(r, out))` with
`W ≈ (U_r √S_r)(√S_r V_rᵀ)`, kept only where `r (in + out) < in · out`. The factored layers are
recorded in `artifact.meta["lowrank"]` (`{name: {"in", "out", "rank", "bias"}}`, in order) so that
`refactor()` can rebuild the model from its factory and load saved weights with `weights_only=True`.
Only plain `nn.Linear` modules are factored (not subclasses such as attention's `out_proj`).
"""

from __future__ import annotations

import copy
import difflib
import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrink import Artifact, Context, UsageError

if TYPE_CHECKING:
    from shrink_lowrank.plugin import LowRankOptions


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def refactor(model: nn.Module, spec: dict[str, dict[str, Any]]) -> nn.Module:
    """Give a fresh model (its factory's output) the factored layers of `spec`, in place; returns it."""
    for name, s in spec.items():
        pair = nn.Sequential(nn.Linear(int(s["in"]), int(s["rank"]), bias=False), nn.Linear(int(s["rank"]), int(s["out"]), bias=bool(s["bias"])))
        _replace(model, name, pair)
    return model


def choose_rank(singular: torch.Tensor, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        return min(rank, len(singular))
    share = torch.cumsum(singular**2, 0) / (singular**2).sum().clamp_min(1e-30)
    return min(int((share < energy - 1e-12).sum()) + 1, len(singular))


def factor_linear(layer: nn.Linear, rank: int | None, energy: float | None) -> tuple[nn.Sequential, int, float]:
    """The two-layer replacement of `layer`, its rank, and the share of squared singular values kept."""
    u, s, vh = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
    r = choose_rank(s, rank, energy)
    root = s[:r].sqrt()
    first = nn.Linear(layer.in_features, r, bias=False)
    second = nn.Linear(r, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_((root[:, None] * vh[:r]).float())
        second.weight.copy_((u[:, :r] * root[None, :]).float())
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach())
    return nn.Sequential(first, second), r, float((s[:r] ** 2).sum() / (s**2).sum().clamp_min(1e-30))


@torch.no_grad()
def accuracy(model: nn.Module, ctx: Context) -> float | None:
    if ctx.data is None or "eval" not in ctx.data.splits or ctx.data.split("eval").labels is None:
        return None
    split = ctx.data.split("eval")
    model.eval()
    x = torch.from_numpy(np.array(split.inputs, dtype=np.float32))
    predicted = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()
    return round(float((predicted == np.asarray(split.labels)).mean()), 6)


def finetune(model: nn.Module, ctx: Context, opts: LowRankOptions, seed: int, who: str) -> float:
    """Cross-entropy fine-tune on the train split (Adam, seeded shuffling); returns the last epoch's mean loss."""
    split = ctx.require_data("train", who)
    if split.labels is None:
        raise UsageError(f"{who} needs labelled training data for its fine-tune (or set finetune_epochs to 0)")
    x = torch.from_numpy(np.array(split.inputs, dtype=np.float32))
    y = torch.from_numpy(np.array(split.labels, dtype=np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    generator = torch.Generator().manual_seed(seed)
    mean = float("nan")
    for epoch in range(opts.finetune_epochs):
        model.train()
        order, total = torch.randperm(len(x), generator=generator), 0.0
        for start in range(0, len(x), opts.batch_size):
            idx = order[start:start + opts.batch_size]
            if len(idx) < 2:
                continue  # a lone sample breaks BatchNorm in training mode
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        mean = total / len(x)
        ctx.report(0.1 + 0.85 * (epoch + 1) / opts.finetune_epochs, f"fine-tuning: epoch {epoch + 1}/{opts.finetune_epochs}, loss {mean:.4f}")
    model.eval()
    return mean


def check_rebuild(model: nn.Module, artifact: Artifact, ctx: Context, spec: dict[str, dict[str, Any]]) -> str:
    """Rebuild from the factory (+ the built-in pruning/fusion records, + `spec`) and load the weights safely."""
    factory = artifact.meta.get("factory")
    if not factory:
        return "skipped: no factory recorded"
    from shrink.api.factory import load_factory

    kwargs = artifact.meta.get("factory_kwargs")
    if kwargs is None:
        section = ctx.recipe.raw.get("model", {})
        kwargs = section.get("kwargs", {}) if section.get("factory") == factory else {}
    try:
        fresh = load_factory(factory, ctx.recipe.base_dir)(**kwargs)
        if artifact.meta.get("pruned_shapes") or artifact.meta.get("fused_bn"):
            from shrink_torch.runtime import rebuild  # shrink's torch plugin records these

            fresh = rebuild(fresh, artifact.meta.get("pruned_shapes"), artifact.meta.get("fused_bn"))
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        refactor(fresh, spec).load_state_dict(torch.load(buffer, weights_only=True))
    except Exception as exc:  # reported, not fatal: the model in memory is fine
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return "ok"


def lowrank(artifact: Artifact, ctx: Context, opts: LowRankOptions, who: str) -> Artifact:
    torch.set_num_threads(int(os.environ.get("SHRINK_TORCH_THREADS", "1")))
    seed = ctx.seed + opts.seed
    torch.manual_seed(seed)
    model = copy.deepcopy(artifact.model).eval()
    modules = dict(model.named_modules())
    unknown = [n for n in opts.skip if n not in modules or not n]
    if unknown:
        close = {n: difflib.get_close_matches(n, [m for m in modules if m], n=1) for n in unknown}
        raise UsageError("skip: the model has no module " + ", ".join(
            f"{n!r}" + (f" (did you mean {close[n][0]!r}?)" if close[n] else "") for n in unknown))

    params_before = count_params(model)
    layers: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    spec: dict[str, dict[str, Any]] = {}
    for name, layer in list(modules.items()):
        if type(layer) is not nn.Linear:
            continue
        if name in opts.skip:
            skipped[name] = "in 'skip'"
            continue
        if min(layer.in_features, layer.out_features) < opts.min_features:
            skipped[name] = f"fewer than {opts.min_features} features"
            continue
        pair, rank, kept = factor_linear(layer, opts.rank, opts.energy)
        if rank * (layer.in_features + layer.out_features) >= layer.in_features * layer.out_features:
            skipped[name] = f"rank {rank} saves no parameters"
            continue
        _replace(model, name, pair)
        spec[name] = {"in": layer.in_features, "out": layer.out_features, "rank": rank, "bias": layer.bias is not None}
        layers.append({"name": name, "shape": f"{layer.in_features}→{layer.out_features}", "rank": rank, "energy_kept": round(kept, 4)})
    ctx.report(0.1, f"factored {len(layers)} Linear layer(s)")

    details: dict[str, Any] = {
        "layers": layers, "skipped": skipped, "params_before": params_before, "params_after": count_params(model),
        "accuracy_before": accuracy(artifact.model, ctx), "accuracy_factored": accuracy(model, ctx),
    }
    if layers and opts.finetune_epochs:
        details["finetune_loss"] = round(finetune(model, ctx, opts, seed, who), 6)
    details["accuracy"] = accuracy(model, ctx) if "finetune_loss" in details else details["accuracy_factored"]
    details["rebuild"] = check_rebuild(model, artifact, ctx, {**artifact.meta.get("lowrank", {}), **spec})
    return artifact.evolve(model=model.eval(), meta={"lowrank": {**artifact.meta.get("lowrank", {}), **spec}}, details=details)
