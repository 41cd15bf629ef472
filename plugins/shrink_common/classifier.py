"""Classifiers over array inputs, for every family whose torch models map one input batch to logits (a
factory's CNN, a Hugging Face image classifier): labelled splits as tensors, seeded batching, shift
augmentation, the (KD) training loop, batched inference, top-1 evaluation and MAC counts.

Imported only from `run()` (it imports torch). Everything is deterministic given `seed`: the
model's initialisation is the caller's business, shuffling and augmentation use a private
`torch.Generator`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrink import Dataset, Split, UsageError
from shrink.api.data import rows, to_model, top1
from shrink.api.inputs import batch_axis
from shrink_common import distributed
from shrink_common.training import TrainConfig, make_optimizer, make_scheduler, run_epoch

Report = Callable[[float, str], None]
StepHook = Callable[[int, int], None]


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


def data_augment(data: Dataset | None, enabled: bool) -> Mapping[str, Any] | None:
    """The train-time augmentation the data source declares (`Dataset.meta["augment"]`), when `enabled` (a pass's
    `augment` option); None otherwise, and for data that declares none (then `augment` means pixel shifts)."""
    spec = data.meta.get("augment") if data is not None and enabled else None
    return spec if isinstance(spec, Mapping) else None


def spec_augment(x: torch.Tensor, generator: torch.Generator, spec: Mapping[str, Any]) -> torch.Tensor:
    """SpecAugment-style augmentation of feature maps `[N, C, time, features]` (Park et al., 2019): each sample
    shifted in time by up to ±`time_shift` frames (edge frames repeated), then `time_masks` bands of up to
    `time_mask` frames and `feature_masks` bands of up to `feature_mask` features set to `fill` (0: the mean of
    standardized features). `channel_offset` > 0 first adds to each sample one normal offset per feature (that standard
    deviation), the same in every frame: a microphone's or room's fixed frequency response is a constant offset of
    the log-mel spectrum, hence of its cepstrum (MFCCs are a linear transform of it)."""
    if x.ndim != 4:
        return x
    n, _, frames, width = x.shape
    shift = int(spec.get("time_shift", 0))
    if shift > 0:
        padded = F.pad(x, (0, 0, shift, shift), mode="replicate")
        starts = torch.randint(0, 2 * shift + 1, (n,), generator=generator).tolist()
        x = torch.stack([padded[i, :, s:s + frames] for i, s in enumerate(starts)])
    else:
        x = x.clone()
    offset = float(spec.get("channel_offset", 0.0))
    if offset > 0:  # one constant per sample and feature, over all frames: a fixed channel response
        x = x + offset * torch.randn((n, 1, 1, width), generator=generator, dtype=x.dtype)
    fill = float(spec.get("fill", 0.0))
    for count, size, axis, length in ((int(spec.get("time_masks", 0)), int(spec.get("time_mask", 0)), 2, frames),
                                      (int(spec.get("feature_masks", 0)), int(spec.get("feature_mask", 0)), 3, width)):
        if count <= 0 or size <= 0:
            continue
        positions = torch.arange(length).view(1, 1, length)
        sizes = torch.randint(0, min(size, length) + 1, (n, count, 1), generator=generator)
        starts = (torch.rand((n, count, 1), generator=generator) * (length - sizes + 1)).floor().long()
        masked = ((positions >= starts) & (positions < starts + sizes)).any(dim=1)  # [N, length]
        shape = (n, 1, length, 1) if axis == 2 else (n, 1, 1, length)
        x = x.masked_fill(masked.view(shape), fill)
    return x


def mixup(x: torch.Tensor, generator: torch.Generator, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mixup (Zhang et al., 2018): each sample blended with a partner drawn from the same batch, with weight
    lambda ~ Beta(alpha, alpha) per sample (numpy's, seeded from `generator`). Returns (mixed inputs, partner
    indices, lambdas); `mixed_labels` blends the labels alike."""
    n = len(x)
    partner = torch.randperm(n, generator=generator)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, n)).to(x.dtype)
    weight = lam.view(n, *([1] * (x.ndim - 1)))
    return weight * x + (1 - weight) * x[partner], partner, lam


def mixed_labels(labels: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, classes: int) -> torch.Tensor:
    """Class probabilities `[N, classes]` of mixup's blends: lambda of the sample's label, the rest its partner's."""
    onehot = F.one_hot(labels, classes).to(lam.dtype)
    return lam.view(-1, 1) * onehot + (1 - lam.view(-1, 1)) * onehot[partner]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Hinton KD: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy on the labels (class
    indices, or class probabilities as mixup gives)."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    if alpha >= 1.0:
        return soft
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int,
          teacher: nn.Module | None = None, report: Report | None = None, label: str = "training",
          progress: tuple[float, float] = (0.0, 1.0), on_step: StepHook | None = None,
          parallel: bool = False) -> TrainResult:
    """Train `model` in place on (x, y): cross-entropy, or Hinton KD from `teacher` when given.

    The teacher runs in eval mode under no_grad on the same (augmented) batch. `report` gets a
    fraction inside `progress` once per epoch. `on_step(step, total_steps)` runs before each
    training batch (e.g. to update pruning masks on a schedule). `parallel`: under torchrun, each rank
    trains on its share of every batch (`shrink_common.distributed`); the teacher is never wrapped.
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
        _loop(model, x, y, cfg, generator, teacher, report, label, progress, result, on_step,
              parallel and distributed.active())
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


def _loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, generator: torch.Generator,
          teacher: nn.Module | None, report: Report | None, label: str, progress: tuple[float, float],
          result: TrainResult, on_step: StepHook | None = None, parallel: bool = False) -> None:
    optimizer = make_optimizer(model.parameters(), cfg)
    forward = distributed.wrap(model) if parallel else model
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    if teacher is not None and cfg.alpha == 0:
        teacher = None  # no KD term: skip the teacher's forward passes
    if teacher is not None:
        teacher.eval()
    lo, hi = progress
    total_steps = cfg.epochs * steps_per_epoch
    step = 0

    def loss_terms(batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        nonlocal step
        idx, mine = batch if isinstance(batch, tuple) else (batch, batch)  # the global batch, this rank's samples
        xb = x[idx]
        if cfg.feature_augment is not None:
            xb = spec_augment(xb, generator, cfg.feature_augment)
        elif cfg.augment:
            xb = random_shift(xb, generator, cfg.max_shift)
        if on_step is not None:
            on_step(step, total_steps)
        step += 1
        yb = y[mine]
        alpha_mix = float(cfg.feature_augment.get("mixup", 0.0)) if cfg.feature_augment is not None else 0.0
        mixing = mixup(xb, generator, alpha_mix) if alpha_mix > 0 else None  # over the global batch, as the other draws
        if mixing is not None:
            xb = mixing[0]
        if parallel:  # the global batch is drawn and augmented as in one process; this rank takes its share
            xb = xb[distributed.positions()]
        logits = forward(xb)
        if mixing is not None:
            yb = mixed_labels(y[idx], mixing[1], mixing[2], logits.shape[1])
            yb = yb[distributed.positions()] if parallel else yb
        if teacher is None:
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        else:
            with torch.no_grad():
                target = teacher(xb)
            loss = kd_loss(logits, target, yb, cfg.temperature, cfg.alpha, cfg.label_smoothing)
        if parallel:
            loss = loss * distributed.share_weight(len(yb), len(idx))
        return {"total": loss}

    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        batches = (order[start:start + cfg.batch_size] for start in range(0, len(x), cfg.batch_size))
        # a lone sample breaks BatchNorm in training mode; under torchrun every rank needs a sample
        if parallel:
            shares = ((idx, distributed.shard(idx)) for idx in batches if len(idx) >= max(2, distributed.world()))
            means, _ = run_epoch(shares, loss_terms, optimizer, scheduler, size=lambda pair: len(pair[1]))
        else:
            means, _ = run_epoch((idx for idx in batches if len(idx) >= 2 or len(x) <= 1), loss_terms, optimizer, scheduler)
        mean = means["total"]
        if not math.isfinite(mean):
            raise FloatingPointError(f"{label}: the loss became {mean} in epoch {epoch + 1}; lower the learning rate")
        result.losses.append(mean)
        if report is not None:
            report(lo + (hi - lo) * (epoch + 1) / cfg.epochs, f"{label}: epoch {epoch + 1}/{cfg.epochs}, loss {mean:.4f}")
    if parallel:
        distributed.same_buffers(model)


def evaluate(model: nn.Module, split: Split | None, parallel: bool = False) -> float | None:
    """Top-1 accuracy on a labelled split (None without one). `parallel`: under torchrun each rank scores
    its share of the samples and the counts are summed over the ranks."""
    if split is None or split.labels is None:
        return None
    if not (parallel and distributed.active()):
        return top1(predict(model, split.inputs), split.labels)
    rows = distributed.positions()
    inputs, labels = np.asarray(split.inputs)[rows], np.asarray(split.labels)[rows]
    correct = int((predict(model, inputs).argmax(axis=1) == labels).sum()) if len(labels) else 0
    hits, total = distributed.sum_across([correct, len(labels)])
    return round(hits / max(total, 1), 6)


def inference_copy(model: nn.Module) -> nn.Module:
    """A frozen copy in eval mode (a KD teacher that later training cannot touch)."""
    import copy

    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


@torch.no_grad()
def predict(model: nn.Module, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for `[N, ...]` inputs, batch by batch, in eval mode."""
    model.eval()
    outs = []
    for start in range(0, len(inputs), batch_size):
        outs.append(model(torch.tensor(np.asarray(inputs[start:start + batch_size]))).float().numpy())
    return np.concatenate(outs)


@torch.no_grad()
def predict_feeds(model: nn.Module, specs: list[dict[str, Any]], feeds: dict[str, np.ndarray],
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
