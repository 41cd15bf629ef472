"""Parity: how close a transformed model's outputs stay to its input model's, on the same inputs.

Every pass that changes a model compares through these helpers (export: the framework against ONNX
Runtime; quantization, fusion, format conversion: ONNX against ONNX), on inputs its model family
builds (`ModelFamily.feeds`), else on seeded random inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shrink.api.data import Feeds, random_feeds, run_feeds
from shrink.support.ort import session

if TYPE_CHECKING:
    from shrink import Artifact, Context

PARITY_SPLITS = ("eval", "calibration", "train")


class ParityError(RuntimeError):
    """A model's outputs differ from its input model's beyond the pass's tolerance."""


def parity_feeds(artifact: Artifact, ctx: Context, count: int) -> Feeds:
    """Up to `count` inputs for a parity check: real data its family can feed, else seeded random inputs."""
    found = ctx.family(artifact).feeds(artifact, ctx, PARITY_SPLITS, count)
    if found is not None:
        return found
    return random_feeds(artifact.inputs, (count,), ctx.seed), f"random[{count}] (seed {ctx.seed})"


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two arrays at any magnitude: each is scaled by its largest |value| first (no
    underflow, no absolute epsilon); two all-zero arrays are identical (1.0), one all-zero array is not (0.0)."""
    flat_a = np.asarray(a, dtype=np.float64).ravel()
    flat_b = np.asarray(b, dtype=np.float64).ravel()
    scale_a = float(np.max(np.abs(flat_a))) if flat_a.size else 0.0
    scale_b = float(np.max(np.abs(flat_b))) if flat_b.size else 0.0
    if scale_a == 0.0 or scale_b == 0.0:
        return 1.0 if scale_a == scale_b else 0.0
    unit_a, unit_b = flat_a / scale_a, flat_b / scale_b
    return float(unit_a @ unit_b / (np.linalg.norm(unit_a) * np.linalg.norm(unit_b)))


def closeness(expected: Any, actual: Any) -> dict[str, float]:
    """`max_abs`, `mean_abs` and `cosine` between two output arrays (in float64)."""
    a, b = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    diff = np.abs(a - b)
    return {"max_abs": float(diff.max()) if diff.size else 0.0, "mean_abs": float(diff.mean()) if diff.size else 0.0,
            "cosine": cosine(a, b)}


def is_classification(artifact: Artifact, ctx: Context) -> bool:
    task = ctx.data.task if ctx.data is not None else artifact.meta.get("task")
    return task == "classification"


def top1_agreement(artifact: Artifact, ctx: Context, expected: Any, actual: Any) -> float | None:
    """The fraction of inputs whose top-1 class agrees, for classifiers with `[N, classes]` outputs."""
    if not is_classification(artifact, ctx) or np.ndim(expected) != 2 or np.shape(expected)[1] <= 1:
        return None
    return float((np.asarray(expected).argmax(axis=1) == np.asarray(actual).argmax(axis=1)).mean())


def _label_sequence(row: Any) -> tuple[int, ...]:
    """A `[T]` row of per-position classes read the CTC way: runs merged, class 0 (the blank) dropped."""
    merged = row[np.r_[True, row[1:] != row[:-1]]]
    return tuple(int(c) for c in merged if c != 0)


def sequence_agreement(expected: Any, actual: Any) -> dict[str, float] | None:
    """For outputs `[N, T, C]` whose last axis is a probability distribution (non-negative, summing to 1: a class
    per position, as a CTC text recognizer or a tagger gives): `sequence_agreement`, the share of inputs whose
    label sequence (top-1 per position, runs merged, class 0 dropped, as CTC decodes) is the same, and
    `position_agreement`, the share of positions whose top-1 class is. None for any other output."""
    e = np.asarray(expected)
    if e.ndim != 3 or e.shape[-1] <= 1 or e.size == 0 or not np.issubdtype(e.dtype, np.floating):
        return None
    if e.min() < 0 or not np.allclose(e.sum(axis=-1), 1.0, atol=1e-3):
        return None
    before, after = e.argmax(axis=-1), np.asarray(actual).argmax(axis=-1)
    same = [_label_sequence(b) == _label_sequence(a) for b, a in zip(before, after)]
    return {"sequence_agreement": float(np.mean(same)), "position_agreement": float((before == after).mean())}


def compare(before: Path, after: Path, artifact: Artifact, ctx: Context, samples: int,
            min_agreement: float, what: str) -> dict[str, Any]:
    """ORT outputs of `before` vs `after` on the same inputs, output by output; raises `ParityError` when an
    output of class scores agrees on the top-1 class below `min_agreement`.

    Every output gets max/mean |Δ| and cosine; outputs that are class scores (`[N, classes]` of a
    classification task) also get top-1 agreement, the gate; outputs of class probabilities per position
    (`[N, T, C]`, see `sequence_agreement`) get the share of inputs whose label sequence agrees and the share of
    positions that agree, reported, not gated: what counts as a changed text (a space at the end, a blank) is
    the decoder's business, which the graph does not say. The first output's figures are also reported
    flat (`parity_cosine`, ...). Float closeness is reported, never gated: int8 and fp16 change values by design.
    """
    feeds, origin = parity_feeds(artifact, ctx, samples)
    # The reference runs unoptimized, so the check also covers what ONNX Runtime's load-time rewrites change.
    reference = session(before, optimize=False)
    names = [o.name for o in reference.get_outputs()]
    expected_all = run_feeds(reference, artifact.inputs, feeds)
    actual_all = run_feeds(session(after), artifact.inputs, feeds)
    per_output: dict[str, dict[str, float]] = {}
    for name, expected, actual in zip(names, expected_all, actual_all):
        close = closeness(expected, actual)
        row = {"max_abs": close["max_abs"], "mean_abs": close["mean_abs"], "cosine": round(close["cosine"], 6)}
        agreement = top1_agreement(artifact, ctx, expected, actual)
        if agreement is not None:
            row["top1_agreement"] = round(agreement, 6)
            if agreement < min_agreement:
                raise ParityError(f"the {what} model agrees with its input on the top-1 class of output {name!r} for "
                                  f"{agreement:.1%} of {len(expected)} inputs ({origin}), below min_agreement "
                                  f"{min_agreement:.1%} (max |Δ| {close['max_abs']:.3g}, cosine {close['cosine']:.4f})")
        sequences = sequence_agreement(expected, actual)
        if sequences is not None:
            row.update({k: round(v, 6) for k, v in sequences.items()})
        per_output[name] = row
    first = per_output[names[0]]
    result: dict[str, Any] = {"parity_inputs": origin, "parity_max_abs": first["max_abs"],
                              "parity_mean_abs": first["mean_abs"], "parity_cosine": first["cosine"]}
    if "top1_agreement" in first:
        result["parity_top1_agreement"] = first["top1_agreement"]
    if "sequence_agreement" in first:
        result["parity_sequence_agreement"] = first["sequence_agreement"]
        result["parity_position_agreement"] = first["position_agreement"]
    if len(per_output) > 1:
        result["parity_outputs"] = per_output
    return result
