"""`prune.structured`: channel pruning with torch-pruning's dependency graph, then a recovery fine-tune.
For Hugging Face encoders (`heads_ratio` / `ffn_ratio`) it removes whole attention heads and FFN channels
instead (`shrink_huggingface.heads`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PlanContext, UsageError
from shrink_torch.options import TrainingOptions

if TYPE_CHECKING:
    import torch
    from torch import nn

Importance = Literal["magnitude", "taylor", "bn_scale", "ablation"]
ENCODER_ONLY = ("heads_ratio", "ffn_ratio")
CHANNELS_ONLY = ("ratio", "ignore", "alpha", "augment", "max_shift")


class PruneStructured(Pass):
    """Remove whole channels with torch-pruning (dependency-aware) or attention heads of encoders, then fine-tune to recover (optionally with KD)."""

    name = "prune.structured"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train", "labels"})
    default = True

    class Options(TrainingOptions):
        ratio: float = Field(0.5, gt=0, le=0.95, description="fraction of channels to remove (0.5 leaves ~25% of the parameters)")
        importance: Importance = Field("magnitude", description="channel ranking: 'magnitude' (group L2 norm), 'taylor' "
                                       "(first-order Taylor on training batches) or 'bn_scale' (|BatchNorm gamma|); encoders: "
                                       "'magnitude' (L2 norm of each head's Q/K/V/O weights) or 'ablation' (cosine drop to the "
                                       "unpruned outputs with the head alone masked, on training sentences)")
        heads_ratio: Annotated[float, Field(gt=0, lt=1)] | SkipJsonSchema[None] = Field(
            None, description="Hugging Face encoders: fraction of attention heads to remove from each layer (or across "
                              "layers with global_pruning); every layer keeps at least one head")
        ffn_ratio: Annotated[float, Field(gt=0, le=0.95)] | SkipJsonSchema[None] = Field(
            None, description="Hugging Face encoders: fraction of feed-forward intermediate channels to remove per layer")
        global_pruning: bool = Field(False, description="rank channels across all layers instead of removing `ratio` from each layer")
        max_layer_ratio: Annotated[float, Field(gt=0, le=1)] | SkipJsonSchema[None] = Field(None, description="most any single layer may lose with "
                                              "global_pruning (default: the larger of ratio and 0.9)")
        round_to: Annotated[int, Field(ge=1, le=256)] | SkipJsonSchema[None] = Field(None, description="keep channel counts a multiple of this (e.g. 4 or 8 for SIMD)")
        ignore: list[str] = Field(default_factory=list, max_length=1000,
                                  description="module names never pruned (the output layer is always kept)")
        finetune_epochs: int = Field(3, ge=0, le=1000, description="recovery fine-tune epochs after pruning (0: none)")
        finetune_kd: bool = Field(True, description="fine-tune with Hinton KD from the unpruned model")
        lr: Annotated[float, Field(gt=0, le=10)] | SkipJsonSchema[None] = Field(
            None, description="fine-tune peak learning rate (default 2e-3; 1e-4 for encoders)")
        taylor_batches: int = Field(4, ge=1, le=1000, description="training batches that rank channels for 'taylor' "
                                    "(heads and FFN channels for 'ablation')")

        @model_validator(mode="after")
        def _consistent(self) -> PruneStructured.Options:
            if self.encoder:
                self._encoder_consistent()
            elif self.importance == "ablation":
                raise ValueError("importance 'ablation' applies only to encoder pruning (heads_ratio / ffn_ratio)")
            if self.max_layer_ratio is not None and self.ratio > self.max_layer_ratio:
                raise ValueError(f"ratio {self.ratio} is greater than max_layer_ratio {self.max_layer_ratio}")
            if self.finetune_epochs == 0 and "finetune_kd" in self.model_fields_set and self.finetune_kd:
                raise ValueError("finetune_kd needs finetune_epochs > 0")
            for key in ("temperature", "alpha"):
                if key in self.model_fields_set and not (self.finetune_kd and self.finetune_epochs > 0):
                    raise ValueError(f"{key} applies only to a KD fine-tune (finetune_kd with finetune_epochs > 0)")
            if "taylor_batches" in self.model_fields_set and self.importance not in ("taylor", "ablation"):
                raise ValueError("taylor_batches applies only to importance 'taylor' or 'ablation'")
            return self

        @property
        def encoder(self) -> bool:
            """Head/FFN pruning of a Hugging Face encoder rather than channel pruning."""
            return self.heads_ratio is not None or self.ffn_ratio is not None

        def _encoder_consistent(self) -> None:
            given = [k for k in CHANNELS_ONLY if k in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)} applies to channel pruning, not to encoder pruning with "
                                 "heads_ratio / ffn_ratio")
            if self.importance not in ("magnitude", "ablation"):
                raise ValueError(f"importance {self.importance!r} does not apply to encoder pruning: use 'magnitude' "
                                 "or 'ablation' (the cosine KD loss has no gradient at the unpruned model, so 'taylor' "
                                 "would rank nothing)")
            if "finetune_kd" in self.model_fields_set and not self.finetune_kd and self.finetune_epochs > 0:
                raise ValueError("an encoder's recovery fine-tune is KD from the unpruned model (text data has no "
                                 "labels): finetune_kd cannot be false; set finetune_epochs 0 for no fine-tune")
            if self.max_layer_ratio is not None and not (self.heads_ratio is not None and self.global_pruning):
                raise ValueError("max_layer_ratio applies to encoders only with heads_ratio and global_pruning")
            if self.global_pruning and self.heads_ratio is None:
                raise ValueError("global_pruning applies to encoders only with heads_ratio (FFN channels are pruned per layer)")
            if self.round_to is not None and self.ffn_ratio is None:
                raise ValueError("round_to applies to encoders only with ffn_ratio (it rounds the kept FFN widths)")

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        if getattr(options, "encoder", False):
            self.requires = frozenset({"train"})  # type: ignore[misc]  # sentences; no labels needed

    def check(self, plan: PlanContext) -> list[str]:
        opts: Any = self.options
        source = plan.recipe.raw.get("model", {}).get("source") if isinstance(plan.recipe.raw.get("model"), dict) else None
        if opts.encoder and source != "huggingface":
            given = " and ".join(k for k in ENCODER_ONLY if getattr(opts, k) is not None)
            return [f"{given} prune attention heads / FFN channels of Hugging Face encoders (model source "
                    f"'huggingface'); this recipe's model source is {source!r}: use 'ratio' for channel pruning"]
        if not opts.encoder and source == "huggingface":
            return ["prune.structured on a Hugging Face encoder removes attention heads and FFN channels: "
                    "give heads_ratio and/or ffn_ratio (not 'ratio')"]
        return []

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import copy

        from shrink_torch.fuse import fused_for_inference
        from shrink_torch.runtime import record_shapes, setup_torch
        from shrink_torch.train import (count_macs, count_params, eval_split, evaluate, split_tensors,
                                                        train)

        opts: Any = self.options
        if opts.encoder or artifact.meta.get("hf_config"):
            if not opts.encoder:
                raise UsageError(f"{self.name}: a Hugging Face encoder is pruned with heads_ratio and/or ffn_ratio")
            from shrink_huggingface.heads import prune_encoder

            return prune_encoder(opts, artifact, ctx, self.name)
        seed = ctx.seed + opts.seed
        setup_torch(seed)
        x, y = split_tensors(ctx.require_data("train", self.name), self.name)
        example = x[:1]
        evaluation = eval_split(ctx)
        original: nn.Module = artifact.model
        model = copy.deepcopy(original).eval()
        before = {"params": count_params(model), "macs": count_macs(model, example), "shapes": record_shapes(model)}

        started = time.perf_counter()
        ctx.report(0.05, f"ranking channels ({opts.importance}) and pruning {opts.ratio:.0%}")
        pruned = prune_channels(model, example, opts.ratio, importance=opts.importance, global_pruning=opts.global_pruning,
                                max_layer_ratio=opts.max_layer_ratio or max(opts.ratio, 0.9), round_to=opts.round_to, ignore=list(opts.ignore),
                                data=(x, y), taylor_batches=opts.taylor_batches, batch_size=opts.batch_size, seed=seed)
        prune_seconds = time.perf_counter() - started
        after_prune = evaluate(model, evaluation)

        result = None
        if opts.finetune_epochs:
            teacher = fused_for_inference(original) if opts.finetune_kd else None
            result = train(model, x, y, _config(opts), seed, teacher=teacher, report=ctx.report,
                           label="fine-tuning" + (" with KD" if teacher is not None else ""), progress=(0.1, 0.95))
        model.eval()
        shapes = record_shapes(model)
        details: dict[str, Any] = {
            "ratio": opts.ratio, "importance": opts.importance, "global_pruning": opts.global_pruning,
            "params_before": before["params"], "params_after": count_params(model),
            "params_kept": round(count_params(model) / max(before["params"], 1), 4),
            "macs_before": before["macs"], "macs_after": count_macs(model, example),
            "ignored": pruned["ignored"], "channels": _channels(before["shapes"], model),
            "accuracy_before": evaluate(original, evaluation), "accuracy_after_prune": after_prune,
            "finetune_epochs": opts.finetune_epochs, "finetune_kd": bool(opts.finetune_kd and opts.finetune_epochs),
            "prune_seconds": round(prune_seconds, 3),
        }
        if result is not None:
            details["finetune_seconds"] = round(result.seconds, 3)
            details["finetune_loss"] = result.final_loss
        details["accuracy"] = evaluate(model, evaluation)
        details["rebuild"] = check_rebuild(model, artifact, ctx, shapes)
        return artifact.evolve(model=model, meta={"pruned_shapes": shapes}, details=details)


def _config(opts: Any) -> Any:
    from shrink_torch.train import TrainConfig

    return TrainConfig(epochs=opts.finetune_epochs, batch_size=opts.batch_size, lr=opts.lr if opts.lr is not None else 2e-3, optimizer=opts.optimizer,
                       weight_decay=opts.weight_decay, schedule=opts.schedule, augment=opts.augment,
                       max_shift=opts.max_shift, temperature=opts.temperature, alpha=opts.alpha)


def _channels(before: dict[str, dict[str, int]], model: nn.Module) -> str:
    """'name: 32→22, …' for the Conv/Linear layers whose output width changed (compact, for the report)."""
    from torch import nn

    changed = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and name in before:
            out = module.out_channels if isinstance(module, nn.modules.conv._ConvNd) else module.out_features
            if out != before[name]["out"]:
                changed.append(f"{name}: {before[name]['out']}→{out}")
    return ", ".join(changed) if changed else "none"


def output_layer(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Module]:
    """The layer producing the model's output: the last Linear (else Conv) whose width is the output's."""
    import torch
    from torch import nn

    with torch.no_grad():
        out = model.eval()(example)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"prune.structured needs a model returning one tensor, got {type(out).__name__}")
    width = out.shape[1] if out.ndim > 1 else out.shape[0]
    for kind in (nn.Linear, nn.modules.conv._ConvNd):
        found = [(name, m) for name, m in model.named_modules()
                 if isinstance(m, kind) and (m.out_features if kind is nn.Linear else m.out_channels) == width]
        if found:
            return found[-1]
    raise ValueError(f"no Linear or Conv layer with {width} outputs (the model's output width) was found; "
                     "name the output layer in 'ignore'")


def prune_channels(model: nn.Module, example: torch.Tensor, ratio: float, *, importance: str = "magnitude",
                   global_pruning: bool = False, max_layer_ratio: float = 1.0, round_to: int | None = None,
                   ignore: list[str] | None = None, data: tuple[torch.Tensor, torch.Tensor] | None = None,
                   taylor_batches: int = 4, batch_size: int = 64, seed: int = 0) -> dict[str, Any]:
    """Prune `model` in place with `tp.pruner.BasePruner`; the output layer and `ignore` are kept whole."""
    import difflib

    import torch
    import torch.nn.functional as F
    import torch_pruning as tp

    from shrink import UsageError

    modules = dict(model.named_modules())
    unknown = [name for name in ignore or [] if name not in modules or not name]
    if unknown:
        hints = [f"{n!r} (did you mean {difflib.get_close_matches(n, list(modules), n=1)[0]!r}?)"
                 if difflib.get_close_matches(n, list(modules), n=1) else repr(n) for n in unknown]
        raise UsageError(f"ignore: the model has no module {', '.join(hints)}")
    out_name, out_layer = output_layer(model, example)
    ignored_names = [out_name] + [n for n in ignore or [] if n != out_name]
    ignored = [modules[n] for n in ignored_names]
    output_shape = tuple(model(example).shape)

    if importance == "magnitude":
        imp = tp.importance.GroupMagnitudeImportance(p=2)
    elif importance == "taylor":
        imp = tp.importance.GroupTaylorImportance()
    else:
        imp = tp.importance.BNScaleImportance()
    # Fresh dicts: torch-pruning mutates its default arguments.
    pruner = tp.pruner.BasePruner(model, example, importance=imp, pruning_ratio=ratio, global_pruning=global_pruning,
                                  max_pruning_ratio=max_layer_ratio, ignored_layers=ignored, round_to=round_to,
                                  in_channel_groups={}, out_channel_groups={}, num_heads={}, channel_groups={})
    if importance == "taylor":
        if data is None:
            raise ValueError("taylor importance needs training data")
        x, y = data
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(x), generator=generator)
        model.zero_grad(set_to_none=True)
        model.train()
        for i in range(taylor_batches):
            idx = order[i * batch_size:(i + 1) * batch_size]
            if len(idx) == 0:
                break
            F.cross_entropy(model(x[idx]), y[idx]).backward()
        model.eval()
    pruner.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        shape = tuple(model(example).shape)
    if shape != output_shape:
        raise RuntimeError(f"pruning changed the output shape {output_shape} → {shape}")
    return {"ignored": ignored_names}


def check_rebuild(model: nn.Module, artifact: Artifact, ctx: Context, shapes: dict[str, dict[str, int]]) -> str:
    """Rebuild the model from its factory and the recorded widths and load the weights (weights_only=True)."""
    import io

    import torch

    from shrink_torch.runtime import factory_model

    if not artifact.meta.get("factory"):
        return "skipped: no factory recorded"
    try:
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        fresh = factory_model({**artifact.meta, "pruned_shapes": shapes}, ctx)
        assert fresh is not None
        fresh.load_state_dict(state)
    except Exception as exc:  # reported, not fatal: the pass's model is fine in memory
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return "ok"
