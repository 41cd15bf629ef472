"""Text to token ids with the `tokenizers` library alone (no torch, no transformers): the one place a tokenizer
file is loaded and sentences are encoded, so that a compile's feeds, the bundle's preprocessing record and
`shrink verify --data` tokenize exactly alike. `tokenizers` is imported only when a tokenizer is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PAD_ID = 0  # what `encode` pads with (its attention mask is 0 there)


def load_tokenizer(path: str | Path, max_length: int) -> Any:
    """A `tokenizers.Tokenizer` from `tokenizer.json`, truncating to `max_length` (longest_first, at the end),
    its own padding off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def encode(tokenizer: Any, texts: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 `[N, L]` with the special tokens: padded with `PAD_ID` to the longest
    text, or to `pad_to`."""
    encodings = tokenizer.encode_batch(list(texts))
    length = pad_to or max((len(e.ids) for e in encodings), default=1)
    ids = np.full((len(encodings), length), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(encodings), length), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = min(len(enc.ids), length)
        ids[row, :n] = enc.ids[:n]
        mask[row, :n] = 1
    return ids, mask
