"""Tokenizing text for BERT-family encoders with the `tokenizers` library alone (no torch, no transformers).

The bundle's runner, the ONNX measuring hook, the quantizer's calibration/parity inputs and the
export parity check all feed the model through these helpers, so they tokenize exactly alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shrink import Artifact, Context
    from shrink_huggingface.mobilebert import DistillMobileBERTOptions
    from shrink_huggingface.tinybert import DistillTinyBERTOptions

TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")


def load_tokenizer(path: str | Path, max_length: int) -> Any:
    """A `tokenizers.Tokenizer` from `tokenizer.json`, truncating to `max_length`, padding off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def tokenizer_from_vocab(vocab: Path, lowercase: bool, dest: Path) -> Path:
    """Build a BERT WordPiece `tokenizer.json` at `dest` from a `vocab.txt` (for folders that lack one)."""
    from tokenizers.implementations import BertWordPieceTokenizer

    BertWordPieceTokenizer(str(vocab), lowercase=lowercase).save(str(dest))
    return dest


def encode(tokenizer: Any, texts: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 `[N, L]`: padded to the longest text, or to `pad_to`."""
    encodings = tokenizer.encode_batch(list(texts))
    length = pad_to or max((len(e.ids) for e in encodings), default=1)
    ids = np.zeros((len(encodings), length), dtype=np.int64)
    mask = np.zeros((len(encodings), length), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = min(len(enc.ids), length)
        ids[row, :n] = enc.ids[:n]
        mask[row, :n] = 1
    return ids, mask


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


def train_tokens(opts: DistillTinyBERTOptions | DistillMobileBERTOptions, artifact: Artifact, ctx: Context, who: str) -> tuple[np.ndarray, np.ndarray, int]:
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
