"""Deep Compression's last stage for a `.tflite`: weight tensors that share few values (after `compress.cluster`)
coded as look-up tables (TFLite Micro's compression: an index of `bits` bits per weight and a value table, decoded
on the device by its DECODE operator), what TFLite Micro never reads stripped from the file, and the honest size
report beside it: the plain int8 file, zlib and zstd of that file (what a generic compressor gets), the LUT-coded
file, the Huffman-coded size of the shared weights' indices (`dahuffman`'s codes; a table of code lengths per
tensor), and where each file's bytes go (`breakdown`). Imported only from `run()`.

One value table per tensor needs the tensor's quantization per tensor: TFLite Micro's DECODE takes its number of
tables from the decoded tensor's scales (`decode_state_lut.cc`), so a per-tensor table under per-channel scales
decodes garbage. Per-channel weights get one table per channel.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CODED_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}  # builtin -> the weight's channel axis
DECODE = "TFLM_DECODE"  # the custom code of TFLite Micro's DECODE operator
KEPT_METADATA = ("OfflineMemoryAllocation",)  # the only metadata TFLite Micro reads (micro_allocator.cc)


@dataclass(frozen=True)
class Shared:
    """A weight tensor whose value tables (one per tensor, or one per channel) take at most `2**bits` values."""

    tensor: int
    name: str
    axis: int | None  # the channel axis (one value table per channel), or None: one table for the tensor
    bits: int
    values: np.ndarray  # the int8 weights

    def slices(self) -> list[np.ndarray]:
        """What each value table covers: the whole tensor, or one channel each."""
        return [self.values] if self.axis is None else list(np.moveaxis(self.values, self.axis, 0))


def shared_weights(data: bytes, max_bits: int) -> tuple[list[Shared], int]:
    """The int8 weight tensors of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED operators whose value tables take
    at most `2**max_bits` values: one table for a tensor quantized per tensor, one per channel (the quantization
    axis) otherwise; and the number of weight tensors in all. Whether coding each one pays is `choose`'s business."""
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
        quant = tensor.quantization
        scales = [] if quant is None else ([quant.scales] if isinstance(quant.scales, (int, float)) else quant.scales)
        per_tensor = len(scales) <= 1
        table_axis = None if per_tensor else (quant.axis if quant.axis is not None else axis)
        parts = [values] if table_axis is None else list(np.moveaxis(values, table_axis, 0))
        count = max(len(np.unique(part)) for part in parts)
        bits = max(1, math.ceil(math.log2(count)))
        if bits <= max_bits and tensor.index not in found:
            found[tensor.index] = Shared(tensor.index, tensor.name or f"tensor{tensor.index}", table_axis, bits, values)
    return sorted(found.values(), key=lambda s: s.tensor), len(weights)


def _aligned(model: Any) -> bytes:
    """The built flatbuffer with its buffers aligned as the schema asks (`force_align`; Python's builder ignores it,
    and DECODE reads indices 8 bytes at a time), through TFLite Micro's own alignment tool."""
    import tempfile

    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.tflite", Path(tmp) / "out.tflite"
        source.write_bytes(bytes(model.build()))
        tflite_flatbuffer_align_wrapper.align_tflite_model(str(source), str(target))
        return target.read_bytes()


def strip(data: bytes, names: bool = True, zero_points: bool = True) -> bytes:
    """The model without what TensorFlow Lite Micro never reads:

    * `names`: the names of its inner tensors (litert-torch writes each one's whole module path, a quarter of a
      small model's file; the graph's inputs and outputs keep theirs), the signature (TFLite Micro addresses inputs
      and outputs by position), the description and the converter's metadata (TFLite Micro reads only
      `OfflineMemoryAllocation`, which is kept);
    * `zero_points`: per-channel zero-point vectors that are all zero, cut to one value (int64 each: 8 bytes per
      channel of every weight and bias; TFLite Micro's allocator reads the single value for every channel), and the
      quantization of DECODE's encoded inputs (the decoder reads its output tensor's).
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    model = model_editor.read(data)
    if names:
        _drop_metadata(model, data)
    for graph in model.subgraphs:
        ports = {id(t) for t in [*graph.inputs, *graph.outputs]}
        encoded = {id(op.inputs[0]) for op in graph.operators if op.custom_code == DECODE and op.inputs}
        for tensor in graph.tensors:
            if names and id(tensor) not in ports:
                tensor.name = None
            if not zero_points or tensor.quantization is None:
                continue
            if id(tensor) in encoded:
                tensor.quantization = None
                tensor._fb.quantization = None  # noqa: SLF001 - model_editor keeps the flatbuffer's copy beside it
                continue
            zeros = tensor.quantization.zero_points
            if not isinstance(zeros, int) and len(zeros) > 1 and not np.any(np.asarray(zeros)):
                tensor.quantization.zero_points = [0]
    return _aligned(model)


def _drop_metadata(model: Any, data: bytes) -> None:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    entries = fb.ModelT.InitFromPackedBuf(data, 0).metadata or []
    model.metadata = {k: v for k, v in model.metadata.items() if k in KEPT_METADATA}
    for entry in entries:  # the model editor writes kept entries' values again: empty every old value buffer
        if 0 < entry.buffer < len(model.buffers):
            model.buffers[entry.buffer].data = b""
    model.description = None
    model._fb.signatureDefs = None  # noqa: SLF001 - the model editor builds from the flatbuffer object it keeps


def lut_compress(data: bytes, shared: list[Shared], zero_points: bool = True) -> bytes:
    """The model with each shared tensor LUT-coded (one value table per tensor or per channel, `Shared.axis`) and
    DECODE operators inserted (TFLite Micro's compression library), then stripped as the plain file is."""
    from tflite_micro.tensorflow.lite.micro.compression import compress, spec

    specs = [spec.Tensor(subgraph=0, tensor=s.tensor, compression=[spec.LookUpTableCompression(
        index_bitwidth=s.bits, mode=spec.PerTensor() if s.axis is None else spec.PerChannel(axis=s.axis))])
        for s in shared]
    with warnings.catch_warnings():  # it warns of tensors that grow; `choose` keeps only those that pay
        warnings.simplefilter("ignore")
        coded = bytes(compress(data, specs))  # the package exports the function under its module's name
    return strip(coded, names=False, zero_points=zero_points)


def choose(data: bytes, shared: list[Shared], zero_points: bool = True) -> tuple[list[Shared], bytes | None]:
    """The shared tensors whose coding makes the file smaller, measured on the built file (each coded tensor adds a
    DECODE operator and two tensors, which a small depthwise kernel's saved bits do not pay for), and that file:
    start from all of them, drop one at a time while the file shrinks."""
    if not shared:
        return [], None
    chosen = list(shared)
    best = lut_compress(data, chosen, zero_points)
    improved = True
    while improved and chosen:
        improved = False
        for s in list(chosen):
            rest = [c for c in chosen if c is not s]
            trial = lut_compress(data, rest, zero_points) if rest else data
            if len(trial) < len(best):
                chosen, best, improved = rest, trial, True
    return (chosen, best) if chosen else ([], None)


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


def breakdown(data: bytes) -> dict[str, int]:
    """Where a `.tflite`'s bytes go: the payloads of its vectors (each with its 4-byte length), by what they hold,
    and the rest of the flatbuffer (tables, vtables, offsets, tensor shapes, alignment padding) as `structure`.

    * `weights`: the constant data of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights (or, coded, their
      indices) and DECODE's value tables; `biases`: their int32 biases; `other_constants`: every other buffer;
    * `quantization`: scale, zero-point, min and max vectors of every tensor (a zero point is int64);
    * `names`: tensor, operator-code and signature strings; `metadata`: metadata buffers and the description.
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fb.ModelT.InitFromPackedBuf(data, 0)

    def vec(items: Any, size: int) -> int:
        return 0 if items is None else 4 + len(items) * size

    def text(value: Any) -> int:
        return 0 if value is None else 4 + len(value) + 1

    meta_buffers = {m.buffer for m in model.metadata or []}
    role: dict[int, str] = {}
    rows = dict.fromkeys(("weights", "biases", "other_constants", "quantization", "names", "metadata"), 0)
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")
            inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            if kind in CODED_OPS and len(inputs) >= 2:
                role.setdefault(inputs[1], "weights")
                if len(inputs) >= 3 and inputs[2] >= 0:
                    role.setdefault(inputs[2], "biases")
            elif (code.customCode or b"").decode() == DECODE:
                role.update({i: "weights" for i in inputs})
        for index, tensor in enumerate(graph.tensors):
            q = tensor.quantization
            if q is not None:
                rows["quantization"] += vec(q.scale, 4) + vec(q.zeroPoint, 8) + vec(q.min, 4) + vec(q.max, 4)
            rows["names"] += text(tensor.name)
            buffer = model.buffers[tensor.buffer]
            if tensor.buffer and buffer.data is not None and tensor.buffer not in meta_buffers:
                key = role.get(index, "other_constants")
                # a coded tensor's indices feed DECODE; its decoded output has no buffer
                rows[key] += vec(buffer.data, 1)
                meta_buffers.add(tensor.buffer)  # a buffer shared by tensors counts once
    for entry in model.metadata or []:
        rows["metadata"] += vec(model.buffers[entry.buffer].data, 1) + text(entry.name)
    rows["metadata"] += text(model.description)
    rows["names"] += sum(text(c.customCode) for c in model.operatorCodes)
    for sig in model.signatureDefs or []:
        rows["names"] += text(sig.signatureKey) + sum(text(t.name) for t in [*(sig.inputs or []), *(sig.outputs or [])])
    rows["structure"] = len(data) - sum(rows.values())
    rows["total"] = len(data)
    return rows


def report(plain: bytes, coded: bytes | None, shared: list[Shared], chosen: list[Shared],
           weight_tensors: int) -> dict[str, Any]:
    """The size of the int8 model every way it can be stored (bytes), what was coded (`chosen` of the `shared`
    tensors), and where the bytes go."""
    raw = sum(int(s.values.size) for s in shared)
    rows: dict[str, Any] = {
        "int8_bytes": len(plain), "zlib_bytes": len(zlib.compress(plain, 9)), "zstd_bytes": zstd_bytes(plain),
        "shared_tensors": len(shared), "coded_tensors": len(chosen), "weight_tensors": weight_tensors,
        "shared_weight_bytes": raw, "index_bits": sorted({s.bits for s in chosen}),
        "value_tables": sorted({"per-tensor" if s.axis is None else "per-channel" for s in chosen}),
        "int8_breakdown": breakdown(plain),
    }
    if shared:
        rows["huffman_bytes"] = len(plain) - raw + huffman_bytes(shared)
    if coded is not None:
        rows["lut_bytes"] = len(coded)
        rows["lut_ratio"] = round(len(coded) / len(plain), 4)
        rows["lut_breakdown"] = breakdown(coded)
    return rows


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
