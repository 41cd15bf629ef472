"""`prune.magnitude`: unstructured magnitude sparsity with torch.nn.utils.prune, ramped up during a fine-tune."""

from __future__ import annotations

import math
import time
import zlib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from shrink import Artifact, Context, Pass
from shrink_common.options import TrainingOptions

if TYPE_CHECKING:
    import torch
    from torch import nn

LayerKind = Literal["conv", "linear"]
STORAGE_ENCODING = ("zlib level 9 over the raw float32 bytes of every parameter; CSR: float32 values + int16 "
                    "(int32 past 65,535 columns) column indices + int32 row pointers for each pruned weight "
                    "(viewed as [out, in*kernel]), other parameters dense")


class PruneMagnitudeOptions(TrainingOptions):
    """Options of the `prune.magnitude` pass."""

    search_space = {"sparsity": {"float": [0.3, 0.9]}}

    sparsity: float = Field(0.5, gt=0, le=0.99, description="fraction of the selected layers' weights set to zero")
    scope: Literal["global", "layer"] = Field("global", description="'global': one magnitude threshold across all "
                                              "selected layers (they end up with different sparsities); 'layer': "
                                              "every layer pruned to `sparsity`")
    layers: list[LayerKind] = Field(["conv", "linear"], min_length=1, max_length=2,
                                    description="layer types whose weights are pruned (biases are never pruned)")
    ignore: list[str] = Field(default_factory=list, max_length=1000, description="module names never pruned")
    schedule: Literal["cubic", "linear", "oneshot"] = Field(
        "cubic", description="how sparsity rises during the fine-tune: 'cubic' s_f(1-(1-t)^3) (Zhu & Gupta 2017), "
                             "'linear', or 'oneshot' (all at once before fine-tuning)")
    ramp: float = Field(0.75, gt=0, le=1, description="fraction of the fine-tune steps over which sparsity ramps "
                                                      "up; the remaining steps recover at the target sparsity")
    prune_steps: int = Field(16, ge=1, le=10000, description="mask updates along the ramp")
    finetune_epochs: int = Field(2, ge=0, le=1000, description="fine-tune epochs during and after the ramp (0: "
                                                               "one-shot pruning, no training)")
    finetune_kd: bool = Field(True, description="fine-tune with Hinton KD from the unpruned model")
    lr: float = Field(1e-3, gt=0, le=10, description="fine-tune peak learning rate")

    @model_validator(mode="after")
    def _consistent(self) -> PruneMagnitudeOptions:
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers lists a type twice: {self.layers}")
        gradual = self.schedule != "oneshot"
        if self.finetune_epochs == 0 and gradual and "schedule" in self.model_fields_set:
            raise ValueError(f"schedule {self.schedule!r} ramps sparsity during fine-tuning and needs finetune_epochs > 0")
        for key in ("ramp", "prune_steps"):
            if key in self.model_fields_set and not (gradual and self.finetune_epochs > 0):
                raise ValueError(f"{key} applies only to a gradual schedule ('cubic' or 'linear') with finetune_epochs > 0")
        if self.finetune_epochs == 0 and "finetune_kd" in self.model_fields_set and self.finetune_kd:
            raise ValueError("finetune_kd needs finetune_epochs > 0")
        for key in ("temperature", "alpha"):
            if key in self.model_fields_set and not (self.finetune_kd and self.finetune_epochs > 0):
                raise ValueError(f"{key} applies only to a KD fine-tune (finetune_kd with finetune_epochs > 0)")
        return self


class PruneMagnitude(Pass[PruneMagnitudeOptions]):
    """Zero the smallest-magnitude weights (unstructured, global or per layer) on a Zhu & Gupta ramp during a fine-tune."""

    name = "prune.magnitude"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train", "labels"})

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import copy
        import dataclasses

        import torch
        from torch.nn.utils import prune

        from shrink.api.data import labelled_eval
        from shrink_common.channels import finetune_config
        from shrink_common.classifier import evaluate, split_tensors, train
        from shrink_common.torch_setup import setup_torch
        from shrink_torch.fuse import fused_for_inference
        from shrink_torch.prune import check_rebuild

        opts = self.options
        seed = ctx.seed + opts.seed
        setup_torch(seed)
        x, y = split_tensors(ctx.require_data("train", self.name), self.name)
        evaluation = labelled_eval(ctx.data)
        original: nn.Module = artifact.model
        model = copy.deepcopy(original).eval()
        targets = select_layers(model, opts.layers, list(opts.ignore))
        before = storage(model, [])
        gradual = opts.schedule != "oneshot" and opts.finetune_epochs > 0
        updates = 0

        def update(fraction: float) -> None:
            nonlocal updates
            with torch.no_grad():
                if prune_to(targets, fraction, opts.scope):
                    updates += 1

        started = time.perf_counter()
        if not gradual:
            ctx.report(0.05, f"pruning {opts.sparsity:.0%} of the weights ({opts.scope}, one shot)")
            update(opts.sparsity)
        after_oneshot = evaluate(model, evaluation) if not gradual else None
        result = None
        if opts.finetune_epochs:
            plan: dict[int, float] = {}

            def on_step(step: int, total: int) -> None:
                if not plan:
                    plan.update(ramp_schedule(opts.sparsity, opts.schedule, total, opts.ramp, opts.prune_steps))
                if step in plan:
                    update(plan[step])

            teacher = fused_for_inference(original) if opts.finetune_kd else None
            label = f"fine-tuning to {opts.sparsity:.0%} sparsity" + (" with KD" if teacher is not None else "")
            # contiguous weights: torch.nn.utils.prune flattens weights and masks with .view(-1)
            cfg = dataclasses.replace(finetune_config(opts, ctx.data), channels_last=False)
            result = train(model, x, y, cfg, seed, teacher=teacher, report=ctx.report, label=label,
                           progress=(0.05, 0.95), on_step=on_step if gradual else None)
        update(opts.sparsity)  # a no-op unless training skipped the last scheduled step
        for module, name in targets:
            prune.remove(module, name)  # masks become plain zeros: a plain state_dict
        model.eval()
        seconds = time.perf_counter() - started

        per_layer = {name: _zeros(getattr(module, "weight")) for (module, _), name in zip(targets, _names(model, targets))}
        zeros = sum(z for z, _ in per_layer.values())
        pruned_total = sum(n for _, n in per_layer.values())
        params = sum(int(p.numel()) for p in model.parameters())
        model_zeros = sum(_zeros(p)[0] for p in model.parameters())
        after = storage(model, [module for module, _ in targets])
        details: dict[str, Any] = {
            "sparsity_target": opts.sparsity, "sparsity": round(zeros / max(pruned_total, 1), 6),
            "sparsity_model": round(model_zeros / max(params, 1), 6), "scope": opts.scope,
            "schedule": opts.schedule if gradual else "oneshot", "mask_updates": updates,
            "pruned_layers": len(targets), "ignored": ", ".join(opts.ignore) or "none",
            "layer_sparsity": ", ".join(f"{name}: {z / max(n, 1):.3f}" for name, (z, n) in per_layer.items()),
            "params": params, "nonzero_params": params - model_zeros,
            "storage_encoding": STORAGE_ENCODING,
            "weights_dense_bytes": after["dense"],
            "weights_zlib_bytes_before": before["zlib"], "weights_zlib_bytes_after": after["zlib"],
            "zlib_saving": round(1 - after["zlib"] / max(before["zlib"], 1), 4),
            "weights_csr_bytes": after["csr"], "csr_saving": round(1 - after["csr"] / max(after["dense"], 1), 4),
            "accuracy_before": evaluate(original, evaluation),
            "finetune_epochs": opts.finetune_epochs, "finetune_kd": bool(opts.finetune_kd and opts.finetune_epochs),
            "prune_seconds": round(seconds, 3),
        }
        if after_oneshot is not None and opts.finetune_epochs:
            details["accuracy_after_prune"] = after_oneshot
        if result is not None:
            details["finetune_loss"] = result.final_loss
        details["accuracy"] = evaluate(model, evaluation)
        details["rebuild"] = check_rebuild(model, artifact, ctx, artifact.meta.get("pruned_shapes") or {})
        meta = {"sparsity": {"target": opts.sparsity, "achieved": details["sparsity"], "scope": opts.scope}}
        return artifact.evolve(model=model, meta=meta, details=details)

def ramp_schedule(final: float, kind: str, total_steps: int, ramp: float, updates: int) -> dict[int, float]:
    """Training step → sparsity to reach there: `updates` steps spread over the first `ramp` of training.

    Update k of n (1-based) sets s_k = final * (1 - (1 - k/n)^3) for 'cubic' (Zhu & Gupta 2017), final * k/n
    for 'linear'; the last reaches `final`. Steps that collide (short runs) keep the later, higher target.
    """
    end = max(1, math.ceil(ramp * total_steps))
    n = max(1, updates)
    plan: dict[int, float] = {}
    for k in range(1, n + 1):
        t = k / n
        fraction = final * (1 - (1 - t) ** 3) if kind == "cubic" else final * t
        plan[min((k - 1) * end // n, max(total_steps - 1, 0))] = fraction
    return plan


def select_layers(model: nn.Module, kinds: list[str], ignore: list[str]) -> list[tuple[nn.Module, str]]:
    """(module, "weight") for every Conv / Linear of the chosen kinds not in `ignore` (names checked)."""
    import difflib

    from torch import nn

    from shrink import UsageError

    modules = dict(model.named_modules())
    unknown = [name for name in ignore if name not in modules or not name]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise UsageError(f"ignore: the model has no module {', '.join(hints)}")
    types: tuple[type, ...] = ()
    if "conv" in kinds:
        types += (nn.modules.conv._ConvNd,)
    if "linear" in kinds:
        types += (nn.Linear,)
    skipped = set(ignore)
    found = [(module, "weight") for name, module in modules.items()
             if isinstance(module, types) and name not in skipped and isinstance(getattr(module, "weight", None), nn.Parameter)]
    if not found:
        raise UsageError(f"prune.magnitude found no {' or '.join(kinds)} layer to prune"
                         + (f" outside ignore ({', '.join(ignore)})" if ignore else ""))
    return found


def prune_to(targets: list[tuple[nn.Module, str]], fraction: float, scope: str) -> bool:
    """Extend the masks until `fraction` of the weights (globally or in each layer) are pruned; True if any changed.

    Masks only grow: pruned weights stay pruned, and the new ones are the smallest-magnitude survivors.
    """
    from torch.nn.utils import prune

    def pruned(module: nn.Module, name: str) -> int:
        mask = getattr(module, f"{name}_mask", None)
        return int((mask == 0).sum()) if mask is not None else 0

    changed = False
    if scope == "global":
        total = sum(getattr(m, n).numel() for m, n in targets)
        extra = round(fraction * total) - sum(pruned(m, n) for m, n in targets)
        if extra > 0:
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=int(extra))
            changed = True
        return changed
    for module, name in targets:
        extra = round(fraction * getattr(module, name).numel()) - pruned(module, name)
        if extra > 0:
            prune.l1_unstructured(module, name, amount=int(extra))
            changed = True
    return changed


def _names(model: nn.Module, targets: list[tuple[nn.Module, str]]) -> list[str]:
    by_id = {id(module): name for name, module in model.named_modules()}
    return [by_id[id(module)] for module, _ in targets]


def _zeros(tensor: torch.Tensor) -> tuple[int, int]:
    return int((tensor == 0).sum()), int(tensor.numel())


def storage(model: nn.Module, pruned: list[nn.Module]) -> dict[str, int]:
    """Bytes of every parameter: dense float32, zlib-compressed (level 9), and CSR for the `pruned` modules' weights."""
    import numpy as np

    sparse_weights = {id(getattr(m, "weight")) for m in pruned}
    dense = csr = 0
    compressor = zlib.compressobj(9)
    compressed = 0
    for p in model.parameters():
        array = np.ascontiguousarray(p.detach().cpu().float().numpy())
        raw = array.tobytes()
        dense += len(raw)
        compressed += len(compressor.compress(raw))
        if id(p) in sparse_weights and array.ndim >= 2:
            rows = array.reshape(array.shape[0], -1)
            nnz = int(np.count_nonzero(rows))
            index_bytes = 2 if rows.shape[1] <= 65535 else 4
            csr += nnz * (4 + index_bytes) + (rows.shape[0] + 1) * 4
        else:
            csr += len(raw)
    compressed += len(compressor.flush())
    return {"dense": dense, "zlib": compressed, "csr": csr}
