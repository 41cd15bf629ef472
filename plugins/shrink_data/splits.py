"""Cutting one set of samples into train / calibration / eval, deterministically by seed.

Eval is held out first (stratified by class when the samples are labelled); calibration is then drawn from
train (calibration never sees an eval sample). The plan-time check (`size_problems`) states the conditions
the stratified cut needs, so that "too few samples" is a plan error rather than a failure while loading.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from shrink_data.options import SplitOptions


def eval_count(total: int, size: int | float, classes: int = 0) -> int:
    """Samples held out for eval from `total`: a count, or a fraction (at least one sample, and one per class of a
    labelled set, which a stratified cut needs)."""
    if isinstance(size, float):
        return max(1, classes, round(size * total))
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
    counts = Counter(labels or ())
    held = eval_count(total, opts.eval_size, len(counts)) if opts.eval_size else 0
    if not held:
        return []
    problems = [f"{where}: class {classes[label]!r} has only 1 sample; a stratified eval cut needs at least 2 per class"
                for label, count in sorted(counts.items()) if count < 2]
    if held >= total:
        problems.append(f"{where}: eval_size {opts.eval_size} holds out {held} of its {total} samples; train needs at "
                        "least one (lower eval_size, add samples, or declare 'train' and 'eval')")
    elif counts and held < len(counts):
        problems.append(f"{where}: eval_size {opts.eval_size} holds out {held} samples, fewer than its {len(counts)} "
                        "classes; a stratified eval cut needs one per class (raise eval_size)")
    elif counts and total - held < len(counts):
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

    held = eval_count(count, opts.eval_size, 0 if labels is None else len(np.unique(labels))) if opts.eval_size else 0
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


def split_orders(counts: Mapping[str, int], labels: Mapping[str, np.ndarray | None],
                 opts: SplitOptions) -> dict[str, tuple[str, np.ndarray]]:
    """Every split of the dataset as (the declared set it draws from: `"all"`, `"train"`, ...; its indices there).

    One set (`"all"`) is cut; declared splits keep all their samples in a seeded order, and calibration, when not
    declared, is drawn from train."""
    if "all" in counts:
        return {name: ("all", order) for name, order in cut(labels.get("all"), counts["all"], opts).items()}
    found = {name: (name, shuffled(count, opts.seed)) for name, count in counts.items()}
    if "calibration" not in found and "train" in found:
        order = found["train"][1]
        train_labels = labels.get("train")
        found["calibration"] = ("train", calibration(order, None if train_labels is None else train_labels[order],
                                                     opts.calibration_size, opts.seed))
    return found
