"""Training helpers shared by the torch passes: seeded batching, shift augmentation, (KD) training loops.

Imported only from `run()` (it imports torch). Everything is deterministic given `seed`: the
model's initialisation is the caller's business, shuffling and augmentation use a private
`torch.Generator`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrink import UsageError
from shrink.api.context import Split

Report = Callable[[float, str], None]
StepHook = Callable[[int, int], None]


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


@dataclass
class TrainResult:
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        return round(self.losses[-1], 6) if self.losses else None


def split_tensors(split: Split, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A labelled split as (float32 inputs, int64 labels) tensors (copies: the arrays are read-only)."""
    if split.labels is None:
        raise UsageError(f"{who} needs labelled training data")
    x = torch.from_numpy(np.array(split.inputs, dtype=np.float32))
    y = torch.from_numpy(np.array(split.labels, dtype=np.int64))
    if x.ndim < 2 or len(x) != len(y) or len(x) == 0:
        raise UsageError(f"{who}: training split has inputs {tuple(x.shape)} and labels {tuple(y.shape)}")
    return x, y


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    """Shift each image `[N, C, H, W]` by a random (dy, dx) in [-max_shift, max_shift], zero-filled (pad + crop)."""
    if max_shift <= 0 or x.ndim != 4:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """Hinton KD: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy on the labels."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    if alpha >= 1.0:
        return soft
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits, labels)


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        if cfg.weight_decay:
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 1))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int,
          teacher: nn.Module | None = None, report: Report | None = None, label: str = "training",
          progress: tuple[float, float] = (0.0, 1.0), on_step: StepHook | None = None) -> TrainResult:
    """Train `model` in place on (x, y): cross-entropy, or Hinton KD from `teacher` when given.

    The teacher runs in eval mode under no_grad on the same (augmented) batch. `report` gets a
    fraction inside `progress` once per epoch. `on_step(step, total_steps)` runs before each
    training batch (e.g. to update pruning masks on a schedule).
    """
    started = time.perf_counter()
    result = TrainResult(cfg.epochs, 0.0)
    if cfg.epochs <= 0:
        return result
    generator = torch.Generator().manual_seed(seed)
    channels_last = cfg.channels_last and any(p.ndim == 4 for p in model.parameters())
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        _loop(model, x, y, cfg, generator, teacher, report, label, progress, result, on_step)
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def _loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, generator: torch.Generator,
          teacher: nn.Module | None, report: Report | None, label: str, progress: tuple[float, float],
          result: TrainResult, on_step: StepHook | None = None) -> None:
    optimizer = make_optimizer(model.parameters(), cfg)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    scheduler = _scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    if teacher is not None and cfg.alpha == 0:
        teacher = None  # no KD term: skip the teacher's forward passes
    if teacher is not None:
        teacher.eval()
    lo, hi = progress
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            if len(idx) < 2 and len(x) > 1:
                continue  # a lone sample breaks BatchNorm in training mode
            xb = x[idx]
            if cfg.augment:
                xb = random_shift(xb, generator, cfg.max_shift)
            yb = y[idx]
            if on_step is not None:
                on_step(step, cfg.epochs * steps_per_epoch)
            step += 1
            logits = model(xb)
            if teacher is None:
                loss = F.cross_entropy(logits, yb)
            else:
                with torch.no_grad():
                    target = teacher(xb)
                loss = kd_loss(logits, target, yb, cfg.temperature, cfg.alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        mean = total / max(seen, 1)
        if not math.isfinite(mean):
            raise FloatingPointError(f"{label}: the loss became {mean} in epoch {epoch + 1}; lower the learning rate")
        result.losses.append(mean)
        if report is not None:
            report(lo + (hi - lo) * (epoch + 1) / cfg.epochs, f"{label}: epoch {epoch + 1}/{cfg.epochs}, loss {mean:.4f}")


@torch.no_grad()
def evaluate(model: nn.Module, split: Split | None) -> float | None:
    """Top-1 accuracy on a labelled split (None without one)."""
    if split is None or split.labels is None:
        return None
    from shrink_torch.runtime import accuracy, predict

    return round(accuracy(predict(model, split.inputs), np.asarray(split.labels)), 6)


def eval_split(ctx: Any) -> Split | None:
    """The eval split when the data has one with labels."""
    data = ctx.data
    if data is None or "eval" not in data.splits:
        return None
    split = data.split("eval")
    return split if split.labels is not None else None


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Conv and Linear multiply-accumulates for one forward of `example` (batch 1 recommended)."""
    total = 0

    def conv_hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        kernel = math.prod(module.kernel_size)  # type: ignore[arg-type]
        total += output.numel() * (module.in_channels // module.groups) * kernel  # type: ignore[operator]

    def linear_hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features  # type: ignore[operator]

    handles = []
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
