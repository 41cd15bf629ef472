"""Training primitives every family's passes share: the config, optimizer and schedule built from the
pass options, and one epoch of optimisation over any kind of batches. Imported only from `run()`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from shrink_common import distributed

Batch = TypeVar("Batch")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the subset of pass options the loops need (passes build it from their Options)."""

    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    augment: bool = True
    max_shift: int = 2
    temperature: float = 2.0
    alpha: float = 0.5
    channels_last: bool = True  # faster conv training on CPU; the model is returned contiguous
    # the data source's own train-time augmentation (Dataset.meta["augment"], e.g. kws's SpecAugment-style masks);
    # when set, it replaces the pixel shifts of `augment`
    feature_augment: Mapping[str, Any] | None = None
    label_smoothing: float = 0.0  # of the cross-entropy on the labels


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        if cfg.weight_decay:
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 1))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None


def run_epoch(batches: Iterable[Batch], loss_terms: Callable[[Batch], dict[str, torch.Tensor]], optimizer: Any,
              scheduler: Any, size: Callable[[Batch], int] = len, names: tuple[str, ...] = ()) -> tuple[dict[str, float], int]:
    """One epoch: for each batch, `loss_terms(batch)` returns the (weighted) loss terms and their `total`,
    which is minimised one optimizer (and scheduler) step per batch. Returns the mean of each term over
    the samples seen (`size(batch)` each; `names` are reported even when no batch ran; under torchrun over
    every rank's samples) and the steps taken."""
    sums = dict.fromkeys((*names, "total"), 0.0)
    seen = steps = 0
    for batch in batches:
        terms = loss_terms(batch)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps += 1
        count = size(batch)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach()) * count
        seen += count
    if distributed.active():
        *totals, seen = distributed.sum_across([*sums.values(), seen])
        sums = dict(zip(sums, totals))
    return {name: value / max(seen, 1) for name, value in sums.items()}, steps
