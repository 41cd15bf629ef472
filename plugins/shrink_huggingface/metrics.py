"""Fidelity of a sentence encoder to its teacher on held-out text: per-sentence cosine and the Spearman
correlation of the two pairwise-similarity matrices. Used by the measuring hook for torch and ONNX."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np

from shrink import Artifact, Context
from shrink_huggingface.tokens import artifact_tokenizer, encode, text_split

_TEACHER: dict[tuple[int, str, int], tuple[Any, np.ndarray]] = {}


def normalized(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fidelity(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """`cosine` (mean over sentences), `cosine_min` and `spearman` of the pairwise cosine similarities."""
    from scipy.stats import spearmanr

    s, t = normalized(student), normalized(teacher)
    per_sentence = (s * t).sum(1)
    out = {"cosine": round(float(per_sentence.mean()), 6), "cosine_min": round(float(per_sentence.min()), 6)}
    if len(s) >= 3:
        upper = np.triu_indices(len(s), k=1)
        rho = spearmanr((s @ s.T)[upper], (t @ t.T)[upper]).statistic
        out["spearman"] = round(float(rho), 6)
    return out


def eval_tokens(artifact: Artifact, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The eval sentences tokenized and sorted by length, with the permutation back to the data's order."""
    tokenizer = artifact_tokenizer(artifact)
    found = text_split(ctx, ("eval",))
    if tokenizer is None or found is None:
        return None
    ids, mask = encode(tokenizer, found[1])
    order = np.argsort(mask.sum(1), kind="stable")  # batches of similar length: less padding
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return ids[order], mask[order], inverse


def _torch_outputs(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from shrink_huggingface.model import embed

    return embed(model, ids, mask)


def _onnx_outputs(path: Path, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    from shrink.support.ort import session

    sess = session(path)
    names = {i.name for i in sess.get_inputs()}
    outs = []
    for start in range(0, len(ids), batch_size):
        m = mask[start:start + batch_size]
        length = max(int(m.sum(1).max()), 1)
        feeds = {"input_ids": np.ascontiguousarray(ids[start:start + batch_size, :length]),
                 "attention_mask": np.ascontiguousarray(m[:, :length])}
        outs.append(sess.run(None, {k: v for k, v in feeds.items() if k in names})[0])
    return np.concatenate(outs)


def outputs(artifact: Artifact, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if artifact.format == "onnx":
        return _onnx_outputs(Path(artifact.model), ids, mask)
    return _torch_outputs(artifact.model, ids, mask)


def teacher_outputs(teacher: Artifact, ctx: Context, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The teacher's outputs on the eval tokens, computed once per (teacher model, data) in this process."""
    key = (id(teacher.model), ctx.data.fingerprint if ctx.data is not None else "", len(ids))
    cached = _TEACHER.get(key)
    if cached is not None and cached[0]() is teacher.model:
        return cached[1]
    values = outputs(teacher, ids, mask)
    _TEACHER.clear()
    _TEACHER[key] = (weakref.ref(teacher.model), values)
    return values


def _tokenizer_file(artifact: Artifact) -> str | None:
    return (artifact.meta.get("bundle_files") or {}).get(artifact.meta.get("tokenizer") or "")


def measure(artifact: Artifact, ctx: Context) -> dict[str, Any] | None:
    """Held-out fidelity metrics for a sentence encoder, or None when they do not apply."""
    if artifact.meta.get("task") != "sentence-embedding" or artifact.format not in ("torch", "onnx"):
        return None
    teacher = ctx.source if ctx.source is not None and ctx.source.model is not None else artifact
    if teacher.format != "torch" or teacher.meta.get("task") != "sentence-embedding":
        return None
    tokens = eval_tokens(teacher, ctx)
    if tokens is None:
        return None
    ids, mask, inverse = tokens
    reference = teacher_outputs(teacher, ctx, ids, mask)[inverse]  # back in the data's order
    if artifact is teacher:
        mine = reference
    else:  # its own tokenizer: a pass may have renumbered the vocabulary (prune.embeddings)
        own = tokens if _tokenizer_file(artifact) == _tokenizer_file(teacher) else eval_tokens(artifact, ctx)
        if own is None:
            return None
        mine = outputs(artifact, own[0], own[1])[own[2]]
    metrics: dict[str, Any] = fidelity(mine, reference)
    groups = (ctx.data.meta.get("eval_groups") if ctx.data is not None else None) or {}
    if len(groups) > 1:  # per held-out source, in the dataset's order
        s, t = normalized(mine), normalized(reference)
        start = 0
        for name, count in groups.items():
            metrics[f"cosine_{name}"] = round(float((s[start:start + count] * t[start:start + count]).sum(1).mean()), 6)
            start += count
    metrics["eval_sentences"] = len(ids)
    return metrics
