"""Deep Compression's last stage for a `.tflite`: weight tensors that share few values per channel (after
`compress.cluster`) coded as look-up tables (TFLite Micro's compression: an index of `bits` bits per weight and a
value table per channel, decoded on the device by its DECODE operator), and the honest size report beside it:
the plain int8 file, zlib and zstd of that file (what a generic compressor gets), the LUT-coded file, and the
Huffman-coded size of the shared weights' indices (`dahuffman`'s codes; a table of code lengths per tensor).
Imported only from `run()`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CODED_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}  # builtin -> the weight's channel axis
LUT_HEADER = 16  # bytes of TFLite Micro's DECODE metadata per coded tensor (lut.py: value tables start at byte 16)


@dataclass(frozen=True)
class Shared:
    """A weight tensor whose channels each take at most `2**bits` distinct values."""

    tensor: int
    name: str
    axis: int  # the channel axis: one value table per channel
    bits: int
    values: np.ndarray  # the int8 weights

    def slices(self) -> list[np.ndarray]:
        """What each value table covers: one channel each."""
        return list(np.moveaxis(self.values, self.axis, 0))


def shared_weights(data: bytes, max_bits: int) -> tuple[list[Shared], int]:
    """The int8 weight tensors of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED operators that have at most
    `2**max_bits` distinct values in every channel (their quantization axis) and that LUT coding makes smaller, and
    the number of weight tensors in all."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = model_editor.read(data)
    graph = model.subgraphs[0]
    found: dict[int, Shared] = {}
    weights: set[int] = set()
    for op in graph.operators:
        axis = CODED_OPS.get(names.get(int(op.opcode), ""))
        if axis is None or len(op.inputs) < 2 or op.inputs[1] is None:
            continue
        tensor = op.inputs[1]
        values = tensor.array
        if values is None or values.dtype != np.int8:
            continue
        weights.add(tensor.index)
        # Always one value table per channel, even where the whole tensor shares one set of values: TFLite Micro's
        # per-tensor LUT mode decoded FULLY_CONNECTED weights wrongly in our runs (outputs far from the int8
        # model's), while per-channel tables decode bit-identically; the extra tables cost channels x 2**bits bytes.
        per_channel = max(len(np.unique(c)) for c in np.moveaxis(values, axis, 0))
        bits = max(1, math.ceil(math.log2(per_channel)))
        tables = int(values.shape[axis])
        coded = math.ceil(values.size * bits / 8) + tables * (1 << bits) + LUT_HEADER
        # a 3x3 depthwise channel has at most 9 values whatever the clustering: code only what gets smaller
        if bits <= max_bits and coded < values.size and tensor.index not in found:
            found[tensor.index] = Shared(tensor.index, tensor.name or f"tensor{tensor.index}", axis, bits, values)
    return sorted(found.values(), key=lambda s: s.tensor), len(weights)


def strip_names(data: bytes) -> bytes:
    """The model without the names of its inner tensors (TensorFlow Lite Micro never reads them; litert-torch writes
    each one's whole module path, a quarter of a small model's file); the graph's inputs and outputs keep theirs."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    model = model_editor.read(data)
    for graph in model.subgraphs:
        ports = {id(t) for t in [*graph.inputs, *graph.outputs]}
        for tensor in graph.tensors:
            if id(tensor) not in ports:
                tensor.name = None
    return bytes(model.build())


def lut_compress(data: bytes, shared: list[Shared]) -> bytes:
    """The model with each shared tensor LUT-coded per channel and DECODE operators inserted (TFLite Micro's
    compression library)."""
    from tflite_micro.tensorflow.lite.micro.compression import compress, spec

    specs = [spec.Tensor(subgraph=0, tensor=s.tensor, compression=[
        spec.LookUpTableCompression(index_bitwidth=s.bits, mode=spec.PerChannel(axis=s.axis))])
        for s in shared]
    return bytes(compress(data, specs))  # the package exports the function under its module's name


def huffman_bytes(shared: list[Shared]) -> int:
    """Bytes of the shared tensors as Huffman codes of their per-channel indices: the coded bits plus, per tensor, a
    code-length table (one byte per symbol) and the value tables (one int8 per value per table)."""
    from dahuffman import HuffmanCodec

    total = 0
    for s in shared:
        indices = []
        tables = 0
        for part in s.slices():
            _, index = np.unique(part, return_inverse=True)
            tables += 1 << s.bits
            indices.append(index.ravel())
        symbols, counts = np.unique(np.concatenate(indices), return_counts=True)
        codes = HuffmanCodec.from_frequencies(dict(zip(symbols.tolist(), counts.tolist()))).get_code_table()
        bits = sum(int(n) * codes[int(sym)][0] for sym, n in zip(symbols, counts))
        total += math.ceil(bits / 8) + len(symbols) + tables
    return total


def zstd_bytes(data: bytes) -> int | None:
    try:
        import zstandard
    except ImportError:
        return None
    return len(zstandard.ZstdCompressor(level=19).compress(data))


def report(plain: bytes, coded: bytes | None, shared: list[Shared], weight_tensors: int) -> dict[str, Any]:
    """The size of the int8 model every way it can be stored (bytes), and what was coded."""
    raw = sum(int(s.values.size) for s in shared)
    rows: dict[str, Any] = {
        "int8_bytes": len(plain), "zlib_bytes": len(zlib.compress(plain, 9)), "zstd_bytes": zstd_bytes(plain),
        "shared_tensors": len(shared), "weight_tensors": weight_tensors, "shared_weight_bytes": raw,
        "index_bits": sorted({s.bits for s in shared}),
    }
    if shared:
        rows["huffman_bytes"] = len(plain) - raw + huffman_bytes(shared)
    if coded is not None:
        rows["lut_bytes"] = len(coded)
        rows["lut_ratio"] = round(len(coded) / len(plain), 4)
    return rows


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
