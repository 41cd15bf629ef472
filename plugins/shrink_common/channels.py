"""Channel pruning of classifiers over array inputs with torch-pruning's dependency graph, and the recovery
fine-tune: what the torch family and the Hugging Face family (its CNN image classifiers) share for
`prune.structured` and `distill.kd`'s width students. Imported only from `run()` (it imports torch)."""

from __future__ import annotations

import copy
import difflib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from shrink import Context, Dataset, UsageError
from shrink.api.data import labelled_eval
from shrink_common.classifier import count_macs, data_augment, evaluate, split_tensors, train
from shrink_common.torch_setup import count_params, setup_torch
from shrink_common.training import TrainConfig
from shrink_common.widths import Widths, record_shapes

if TYPE_CHECKING:
    from shrink_common.options import StructuredPruneOptions


def prune_and_recover(original: nn.Module, ctx: Context, opts: StructuredPruneOptions,
                      teacher_of: Callable[[nn.Module], nn.Module], who: str) -> tuple[nn.Module, Widths, dict[str, Any]]:
    """A pruned copy of `original` (the `ratio` of its channels removed, the output layer and `ignore` kept whole),
    fine-tuned on the labelled train split (with KD from `teacher_of(original)` when `finetune_kd`): the model,
    its recorded widths and the step's details."""
    seed = ctx.seed + opts.seed
    setup_torch(seed)
    x, y = split_tensors(ctx.require_data("train", who), who)
    example = x[:1]
    evaluation = labelled_eval(ctx.data)
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
        teacher = teacher_of(original) if opts.finetune_kd else None
        result = train(model, x, y, finetune_config(opts, ctx.data), seed, teacher=teacher, report=ctx.report,
                       label="fine-tuning" + (" with KD" if teacher is not None else ""), progress=(0.1, 0.95))
    model.eval()
    shapes = record_shapes(model)
    details: dict[str, Any] = {
        "ratio": opts.ratio, "importance": opts.importance, "global_pruning": opts.global_pruning,
        "params_before": before["params"], "params_after": count_params(model),
        "params_kept": round(count_params(model) / max(before["params"], 1), 4),
        "macs_before": before["macs"], "macs_after": count_macs(model, example),
        "ignored": pruned["ignored"], "channels": describe_channels(before["shapes"], model),
        "accuracy_before": evaluate(original, evaluation), "accuracy_after_prune": after_prune,
        "finetune_epochs": opts.finetune_epochs, "finetune_kd": bool(opts.finetune_kd and opts.finetune_epochs),
        "prune_seconds": round(prune_seconds, 3),
    }
    if result is not None:
        details["finetune_seconds"] = round(result.seconds, 3)
        details["finetune_loss"] = result.final_loss
    details["accuracy"] = evaluate(model, evaluation)
    return model, shapes, details


def finetune_config(opts: StructuredPruneOptions, data: Dataset | None = None) -> TrainConfig:
    """The recovery fine-tune's training config from the pruning options (and `data`'s own augmentation)."""
    return TrainConfig(epochs=opts.finetune_epochs, batch_size=opts.batch_size, lr=opts.lr if opts.lr is not None else 2e-3, optimizer=opts.optimizer,
                       weight_decay=opts.weight_decay, schedule=opts.schedule, augment=opts.augment,
                       max_shift=opts.max_shift, temperature=opts.temperature, alpha=opts.alpha,
                       feature_augment=data_augment(data, opts.augment))


def describe_channels(before: dict[str, dict[str, int]], model: nn.Module) -> str:
    """'name: 32→22, …' for the Conv/Linear layers whose output width changed (compact, for the report)."""
    changed = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and name in before:
            out = module.out_channels if isinstance(module, nn.modules.conv._ConvNd) else module.out_features
            if out != before[name]["out"]:
                changed.append(f"{name}: {before[name]['out']}→{out}")
    return ", ".join(changed) if changed else "none"


def output_layer(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Module]:
    """The layer producing the model's output: the last Linear (else Conv) whose width is the output's."""
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
    import torch_pruning as tp

    modules = dict(model.named_modules())
    unknown = [name for name in ignore or [] if name not in modules or not name]
    if unknown:
        hints = [f"{n!r} (did you mean {difflib.get_close_matches(n, list(modules), n=1)[0]!r}?)"
                 if difflib.get_close_matches(n, list(modules), n=1) else repr(n) for n in unknown]
        raise UsageError(f"ignore: the model has no module {', '.join(hints)}")
    out_name, _ = output_layer(model, example)
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
