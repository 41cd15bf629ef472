"""Samples decoded on demand, so that a large folder streams.

The engine and the passes use a split's inputs through `len()`, slices (`inputs[:count]`) and `np.asarray`;
`LazySamples` answers `len()` from the file list, returns a slice as another lazy view, and decodes files only
when a view is converted to an array (or one sample is indexed). Decoded samples are kept in a bounded
least-recently-used cache, because the engine reads the same eval samples after every pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, overload

import numpy as np

CACHE_BYTES = 256 * 1024 * 1024  # decoded samples kept per source (e.g. 1,300 RGB 224x224 float32 images)


class Decoder:
    """Decodes the sample at an index of a list of files into one array of a fixed shape and dtype."""

    def __init__(self, decode: Callable[[int], np.ndarray], shape: tuple[int, ...], dtype: str) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.decoded = 0  # files actually decoded (cache misses)
        per_sample = max(1, int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize)
        self._decode = decode
        self.sample = lru_cache(maxsize=max(1, CACHE_BYTES // per_sample))(self._miss)

    def _miss(self, index: int) -> np.ndarray:
        self.decoded += 1
        array = np.asarray(self._decode(index), dtype=self.dtype)
        if array.shape != self.shape:
            raise ValueError(f"sample {index} decoded to shape {list(array.shape)}, expected {list(self.shape)}")
        array.setflags(write=False)
        return array


class LazySamples(Sequence[np.ndarray]):
    """A sequence of samples `[N, *shape]` backed by a `Decoder` over some of its indices (`order`)."""

    def __init__(self, decoder: Decoder, order: Sequence[int] | np.ndarray) -> None:
        self.decoder = decoder
        self.order = np.asarray(order, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.order), *self.decoder.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.decoder.dtype

    def __len__(self) -> int:
        return len(self.order)

    @overload
    def __getitem__(self, key: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, key: slice) -> LazySamples: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return self.decoder.sample(int(self.order[key]))
        return LazySamples(self.decoder, self.order[key])  # a slice or an index array: still lazy

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        samples = [self.decoder.sample(int(i)) for i in self.order]
        out = np.stack(samples) if samples else np.empty(self.shape, dtype=self.dtype)
        return out.astype(dtype, copy=False) if dtype is not None else out

    def __repr__(self) -> str:
        return f"LazySamples({len(self)} x {list(self.decoder.shape)} {self.dtype}, {self.decoder.decoded} decoded)"


class Rows(Sequence[np.ndarray]):
    """Some rows (`order`) of an array, e.g. a memory-mapped `.npy`, gathered only when converted to an array."""

    def __init__(self, array: np.ndarray, order: Sequence[int] | np.ndarray) -> None:
        self.array = array
        self.order = np.asarray(order, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.order), *self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return len(self.order)

    @overload
    def __getitem__(self, key: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, key: slice) -> Rows: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.array[int(self.order[key])])
        return Rows(self.array, self.order[key])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = np.asarray(self.array[self.order])
        return out.astype(dtype, copy=False) if dtype is not None else out

    def __repr__(self) -> str:
        return f"Rows({len(self)} x {list(self.array.shape[1:])} {self.dtype})"
