"""Cutting one set of samples into train / calibration / eval, deterministically by seed.

Eval is held out first (stratified by class when the samples are labelled); calibration is then drawn from
train (calibration never sees an eval sample). The plan-time check (`size_problems`) states the conditions
the stratified cut needs, so that "too few samples" is a plan error rather than a failure while loading.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from shrink_data.options import SplitOptions


def eval_count(total: int, size: int | float) -> int:
    """Samples held out for eval from `total`: a count, or a fraction (at least one sample)."""
    if isinstance(size, float):
        return max(1, round(size * total))
    return size


def calibration_count(train: int, size: int | float) -> int:
    """Calibration samples drawn from `train` samples: at most a count, or a fraction (at least one)."""
    if isinstance(size, float):
        return max(1, round(size * train))
    return min(size, train)


def size_problems(total: int, labels: Sequence[int] | None, classes: Sequence[str], opts: SplitOptions,
                  where: str) -> list[str]:
    """Why `opts` cannot cut `total` samples (`labels` one per sample, indexes into `classes`; None when unlabelled):
    one message per problem, naming `where` (the recipe path and the folder or file)."""
    held = eval_count(total, opts.eval_size) if opts.eval_size else 0
    if not held:
        return []
    if held >= total:
        return [f"{where}: eval_size {opts.eval_size} holds out {held} of its {total} samples; train needs at least one "
                "(lower eval_size, add samples, or declare 'train' and 'eval')"]
    if labels is None:
        return []
    counts = Counter(labels)
    problems = [f"{where}: class {classes[label]!r} has only 1 sample; a stratified eval cut needs at least 2 per class"
                for label, count in sorted(counts.items()) if count < 2]
    if held < len(counts):
        problems.append(f"{where}: eval_size {opts.eval_size} holds out {held} samples, fewer than its {len(counts)} "
                        "classes; a stratified eval cut needs one per class (raise eval_size)")
    if total - held < len(counts):
        problems.append(f"{where}: eval_size {opts.eval_size} leaves {total - held} train samples, fewer than its "
                        f"{len(counts)} classes (lower eval_size)")
    return problems


def shuffled(count: int, seed: int) -> np.ndarray:
    """The indices `0..count-1` in a seeded order."""
    from sklearn.utils import shuffle

    return np.asarray(shuffle(np.arange(count), random_state=seed), dtype=np.int64)


def cut(labels: np.ndarray | None, count: int, opts: SplitOptions) -> dict[str, np.ndarray]:
    """Indices of train / calibration / eval in one set of `count` samples (see the module docstring)."""
    from sklearn.model_selection import train_test_split

    held = eval_count(count, opts.eval_size) if opts.eval_size else 0
    if held:
        train, held_out = train_test_split(np.arange(count), test_size=held, stratify=labels, random_state=opts.seed)
        found = {"train": np.asarray(train, dtype=np.int64), "eval": np.asarray(held_out, dtype=np.int64)}
    else:
        found = {"train": shuffled(count, opts.seed)}
    found["calibration"] = calibration(found["train"], None if labels is None else labels[found["train"]],
                                       opts.calibration_size, opts.seed)
    return found


def calibration(train: np.ndarray, labels: np.ndarray | None, size: int | float, seed: int) -> np.ndarray:
    """`calibration_count` of the `train` indices, stratified by `labels` where every class can be represented."""
    from sklearn.model_selection import train_test_split

    wanted = calibration_count(len(train), size)
    if wanted >= len(train):
        return train
    try:
        return np.asarray(train_test_split(train, test_size=wanted, stratify=labels, random_state=seed)[1], dtype=np.int64)
    except ValueError:  # fewer samples than classes, or a class of one: calibration needs no balance, only samples
        return train[:wanted]
