"""Tokenizing text for BERT-family encoders with the `tokenizers` library alone (no torch, no transformers).

The bundle's runner, the ONNX measuring hook, the quantizer's calibration/parity inputs, the export parity
check and `shrink verify --data` all feed the model through `shrink_common.tokenize`, so they tokenize exactly
alike; this module finds an artifact's tokenizer and text, and records them in the preprocessing record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shrink_common.tokenize import encode, load_tokenizer

if TYPE_CHECKING:
    from shrink import Artifact, Context
    from shrink_huggingface.mobilebert import DistillMobileBERTOptions
    from shrink_huggingface.tinybert import TrainingOptions

TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")
__all__ = ["encode", "load_tokenizer"]  # re-exported: the tests and examples import them from here


def tokenizer_from_vocab(vocab: Path, lowercase: bool, dest: Path) -> Path:
    """Build a BERT WordPiece `tokenizer.json` at `dest` from a `vocab.txt` (for folders that lack one)."""
    from tokenizers.implementations import BertWordPieceTokenizer

    BertWordPieceTokenizer(str(vocab), lowercase=lowercase).save(str(dest))
    return dest


def artifact_tokenizer(artifact: Artifact) -> Any | None:
    """The tokenizer that travels with an encoder artifact (meta `tokenizer` names a `bundle_files` entry)."""
    name = artifact.meta.get("tokenizer")
    files = artifact.meta.get("bundle_files") or {}
    if not name or name not in files:
        return None
    return load_tokenizer(files[name], int(artifact.meta.get("max_length", 128)))


def text_split(ctx: Context, splits: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """The first of `splits` that the data has, when its inputs are sentences."""
    if ctx.data is None:
        return None
    for name in splits:
        if name in ctx.data.splits:
            raw = ctx.data.split(name).inputs
            if len(raw) and isinstance(raw[0], str):
                return name, list(raw)
    return None


def token_feeds(artifact: Artifact, ctx: Context, splits: tuple[str, ...], count: int,
                pad_to: int | None = None) -> tuple[dict[str, np.ndarray], str] | None:
    """Up to `count` tokenized sentences of the first text split in `splits` as model feeds, or None
    when the artifact has no tokenizer or the data is not text. Padded to `pad_to` (default: the
    artifact's max_length, so every batch has one shape)."""
    tokenizer = artifact_tokenizer(artifact)
    found = text_split(ctx, splits)
    if tokenizer is None or found is None:
        return None
    name, texts = found
    texts = texts[:count]
    ids, mask = encode(tokenizer, texts, pad_to or int(artifact.meta.get("max_length", 128)))
    return {INPUT_NAMES[0]: ids, INPUT_NAMES[1]: mask}, f"{name}[:{len(texts)}] (tokenized)"


def train_tokens(opts: TrainingOptions | DistillMobileBERTOptions, artifact: Artifact, ctx: Context, who: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The train split's sentences tokenized for a distillation pass (its `max_sentences` and `max_length`
    options): `(ids, mask, max_length)`, padded to `max_length`."""
    from shrink import UsageError

    found = text_split(ctx, ("train",))
    if found is None:
        raise UsageError(f"{who} needs text sentences in the data's train split (data source 'text')")
    texts = found[1][:opts.max_sentences] if opts.max_sentences else found[1]
    tokenizer = artifact_tokenizer(artifact)
    if tokenizer is None:
        raise UsageError(f"{who}: the model has no tokenizer (meta 'tokenizer')")
    max_length = opts.max_length or int(artifact.meta.get("max_length", 128))
    tokenizer.enable_truncation(max_length=max_length)
    ids, mask = encode(tokenizer, texts, pad_to=max_length)
    return ids, mask, max_length


def text_record(artifact: Artifact, record: dict[str, Any]) -> dict[str, Any]:
    """A `text` preprocessing record completed with how this family tokenizes for the artifact: its tokenizer file
    in the bundle, truncation at `max_length`, padding as its feeds pad (classifiers to max_length, sentence
    encoders to the longest sentence) and the model inputs that take the ids and the mask."""
    from shrink_common.tokenize import PAD_ID

    name = artifact.meta.get("tokenizer")
    if not name or name not in (artifact.meta.get("bundle_files") or {}):
        return record
    embedding = artifact.meta.get("task") == "sentence-embedding"
    present = {str(spec["name"]) for spec in artifact.inputs}
    return {**record, "task": "sentence-embedding" if embedding else record.get("task"),
            "tokenizer": {"file": name, "max_length": int(artifact.meta.get("max_length", 128)), "truncation": "longest_first",
                          "padding": "longest" if embedding else "max_length", "pad_id": PAD_ID, "add_special_tokens": True},
            "inputs": {role: role for role in INPUT_NAMES if role in present}}
