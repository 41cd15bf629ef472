"""Static analysis of a TensorFlow Lite flatbuffer (`.tflite`), read with the `tflite` package (the generated
flatbuffer classes of the TFLite schema; pure Python). It fills the same `Analysis` record as the ONNX analysis:

* ops: one `OpUse` per (builtin operator, version, data dtypes), domain `"tflite"`; a custom operator is
  `CUSTOM:<code>` (TFLite Micro's `TFLM_DECODE` for compressed tensors). Data dtypes are those of the inputs a
  kernel computes on: activations, weights and biases, not constant int32 shapes, axes or paddings.
* weights: tensors backed by a buffer with data, by stored dtype.
* MACs: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and BATCH_MATMUL, from the tensor shapes;
  ops known to cost no multiply-accumulates count 0; any other op makes the figure incomplete.
* activation memory: the non-constant tensors of the main subgraph in operator order (inputs live from the start,
  outputs to the end), the liveness peak and a greedy-by-size offset plan with TFLite Micro's 16-byte alignment
  (`GreedyMemoryPlanner`), which is the head of the arena TFLite Micro allocates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shrink.analysis.memory import _arena, _Life, _peak
from shrink.analysis.model import AnalysisError
from shrink.analysis.result import Analysis, LiveTensor, OpUse

DOMAIN = "tflite"
ALIGNMENT = 16  # TFLite Micro's kBufferAlignment: every planned buffer starts on 16 bytes
INSTALL = "pip install -e '.[tflite]'"

_DTYPES = {0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8), 5: ("string", 1),
           6: ("bool", 1), 7: ("int16", 2), 9: ("int8", 1), 10: ("float64", 8), 13: ("uint64", 8), 15: ("uint32", 4),
           16: ("uint16", 2), 17: ("int4", 1)}
DECODE = "CUSTOM:TFLM_DECODE"  # TFLite Micro's DECODE of compressed (LUT-coded) tensors
FREE_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "HARD_SWISH", "LOGISTIC", "TANH",
    "SOFTMAX", "LOG_SOFTMAX", "QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PAD", "PADV2",
    "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "CONCATENATION", "SPLIT",
    "SPLIT_V", "STRIDED_SLICE", "SLICE", "GATHER", "MAXIMUM", "MINIMUM", "SHAPE", "PACK", "UNPACK", "CAST", "ABS",
    "NEG", "SQRT", "RSQRT", "EXP", "LOG", "SQUARED_DIFFERENCE", "L2_NORMALIZATION", "RESIZE_NEAREST_NEIGHBOR",
    "RESIZE_BILINEAR", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "FILL", "ZEROS_LIKE", DECODE,
})


def _names(enum: type) -> dict[int, str]:
    return {value: key for key, value in vars(enum).items() if not key.startswith("_") and isinstance(value, int)}


def read(path: Path) -> Any:
    """The flatbuffer's root `Model`; an unreadable or foreign file is an `AnalysisError` (exit 2)."""
    try:
        import tflite
    except ImportError as exc:  # a core dependency: only a broken install lacks it
        raise AnalysisError(f"reading {path.name} needs the 'tflite' package (pip install tflite)") from exc
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise AnalysisError(f"{path.name} is not a TensorFlow Lite flatbuffer (no TFL3 identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise AnalysisError(f"{path.name} has no subgraph")
        return model
    except AnalysisError:
        raise
    except Exception as exc:  # flatbuffers raises plain errors on a damaged buffer
        raise AnalysisError(f"{path.name} cannot be parsed as a TFLite model: {exc}") from None


def operator_name(model: Any, index: int) -> tuple[str, int]:
    """(builtin or `CUSTOM:<code>` name, version) of operator code `index`."""
    from tflite.BuiltinOperator import BuiltinOperator

    code = model.OperatorCodes(index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    name = _names(BuiltinOperator).get(builtin, f"BUILTIN_{builtin}")
    # a custom code names a custom operator whatever the builtin fields say: TFLite Micro's compressor writes its
    # DECODE with builtin code 0 (ADD), and TFLite Micro resolves it by the custom code
    if name == "CUSTOM" or code.CustomCode():
        name = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
    return name, int(code.Version())


def _tensor(graph: Any, model: Any, index: int) -> dict[str, Any]:
    t = graph.Tensors(index)
    dtype, size = _DTYPES.get(t.Type(), (f"type{t.Type()}", 1))
    shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
    buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    stored = 0
    if buffer is not None:
        stored = buffer.DataLength() or (int(buffer.Size()) if buffer.Offset() > 1 else 0)
    count = math.prod(shape) if shape else 1
    nbytes = (count + 1) // 2 if dtype == "int4" else count * size
    return {"name": (t.Name() or b"").decode(errors="replace") or f"tensor{index}", "dtype": dtype, "shape": shape,
            "elements": count, "bytes": nbytes, "stored": stored, "constant": stored > 0, "variable": bool(t.IsVariable())}


def _macs(op_name: str, inputs: list[dict[str, Any] | None], outputs: list[dict[str, Any]]) -> int | None:
    """MACs of one operator, None when it has no cost rule."""
    out = outputs[0]["elements"] if outputs else 0
    weight = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    if op_name == "CONV_2D" and weight is not None and len(weight["shape"]) == 4:
        _, kh, kw, cin = weight["shape"]
        return out * kh * kw * cin
    if op_name == "DEPTHWISE_CONV_2D" and weight is not None and len(weight["shape"]) == 4:
        _, kh, kw, _ = weight["shape"]
        return out * kh * kw
    if op_name == "FULLY_CONNECTED" and weight is not None and weight["shape"]:
        return out * weight["shape"][-1]
    if op_name == "TRANSPOSE_CONV" and len(inputs) > 2 and inputs[1] is not None and inputs[2] is not None:
        _, kh, kw, _ = inputs[1]["shape"]
        return inputs[2]["elements"] * kh * kw * inputs[1]["shape"][0]
    if op_name == "BATCH_MATMUL" and inputs and inputs[0] is not None and inputs[0]["shape"]:
        return out * inputs[0]["shape"][-1]
    if op_name in FREE_OPS:
        return 0
    return None


MAC_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL"})


def _data(op_name: str, tensor: dict[str, Any]) -> bool:
    """Whether an input is data the kernel computes on (its dtype is checked): activations, weights and biases;
    not the constant int32/int64 shapes, axes, permutations and paddings of other ops."""
    return not tensor["constant"] or op_name in MAC_OPS or tensor["dtype"] not in ("int32", "int64")


def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def analyze_tflite(path: Path, shapes: Mapping[str, list[int]] | None = None) -> Analysis:
    """The `Analysis` of a `.tflite` file's main subgraph (`shapes` is accepted for symmetry; a .tflite pins its own)."""
    model = read(path)
    graph = model.Subgraphs(0)
    tensors = [_tensor(graph, model, i) for i in range(graph.TensorsLength())]
    order: list[tuple[str, int, list[int], list[int]]] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name, version = operator_name(model, op.OpcodeIndex())
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        order.append((name, version, ins, outs))
    # a LUT-coded weight is stored as DECODE's inputs (indices and value tables: bytes, not parameters) and
    # exists as DECODE's output (the parameters, decoded on the device)
    coded = {i for name, _, ins, _ in order if name == DECODE for i in ins if i >= 0}
    decoded = {o for name, _, _, outs in order if name == DECODE for o in outs}
    weights: dict[str, dict[str, int]] = {}
    for index, t in enumerate(tensors):
        if t["constant"] or index in decoded:
            entry = weights.setdefault(t["dtype"], {"params": 0, "bytes": 0})
            entry["params"] += 0 if index in coded else t["elements"]
            entry["bytes"] += t["stored"]
    macs_total, macs_by_op, incomplete = 0, {}, []
    uses: dict[tuple[str, int, tuple[str, ...]], dict[str, Any]] = {}
    for step, (name, version, ins, outs) in enumerate(order):
        in_tensors = [tensors[i] if i >= 0 else None for i in ins]
        macs = _macs(name, in_tensors, [tensors[o] for o in outs])
        if macs is None:
            incomplete.append(f"no cost model for TFLite operator {name}")
            macs = 0
        macs_total += macs
        if macs:
            macs_by_op[name] = macs_by_op.get(name, 0) + macs
        dtypes = tuple(sorted({t["dtype"] for t in in_tensors if t is not None and _data(name, t)}))
        use = uses.setdefault((name, version, dtypes), {"count": 0, "nodes": [], "macs": 0, "by_dtype": {}})
        use["count"] += 1
        use["nodes"].append(f"{name}_{step}")
        use["macs"] += macs
        run_dtype = "int8" if {"int8", "uint8", "int16"} & set(dtypes) else "float32"
        if macs:
            use["by_dtype"][run_dtype] = use["by_dtype"].get(run_dtype, 0) + macs
    ops = tuple(OpUse(DOMAIN, name, version, dtypes, u["count"], tuple(u["nodes"]), u["macs"], tuple(sorted(u["by_dtype"].items())))
                for (name, version, dtypes), u in sorted(uses.items()))
    macs_by_dtype: dict[str, int] = {}
    for use in ops:
        for dtype, count in use.macs_by_dtype:
            macs_by_dtype[dtype] = macs_by_dtype.get(dtype, 0) + count
    lives, peak_node, peak_live, peak = _activations(graph, tensors, order)
    graph_inputs = [int(i) for i in graph.InputsAsNumpy()] if graph.InputsLength() else []
    graph_outputs = [int(i) for i in graph.OutputsAsNumpy()] if graph.OutputsLength() else []
    return Analysis(
        params=sum(v["params"] for v in weights.values()), weight_bytes=sum(v["bytes"] for v in weights.values()),
        weights_by_dtype=weights, macs=macs_total, macs_by_op=macs_by_op, peak_activation_bytes=peak,
        arena_bytes=_arena(lives), peak_node=peak_node, peak_live=peak_live,
        input_bytes=sum(tensors[i]["bytes"] for i in graph_inputs), output_bytes=sum(tensors[i]["bytes"] for i in graph_outputs),
        ops=ops, opsets={DOMAIN: int(model.Version())}, nodes=len(order),
        subgraphs=tuple(f"subgraph{i}" for i in range(1, model.SubgraphsLength())),
        notes=(f"{model.SubgraphsLength() - 1} further subgraph(s) not analysed",) if model.SubgraphsLength() > 1 else (),
        qdq_ops=ops, incomplete=tuple(dict.fromkeys(incomplete)), macs_by_dtype=macs_by_dtype)


def _activations(graph: Any, tensors: list[dict[str, Any]],
                 order: list[tuple[str, int, list[int], list[int]]]) -> tuple[list[_Life], str, tuple[LiveTensor, ...], int]:
    """Lifetimes of the planned (non-constant, non-variable) tensors, the peak step's node and live tensors."""
    steps = max(len(order), 1)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in ([int(x) for x in graph.InputsAsNumpy()] if graph.InputsLength() else []):
        first[i] = 0
    for step, (_, _, ins, outs) in enumerate(order):
        for o in outs:
            first.setdefault(o, step)
            last[o] = max(last.get(o, step), step)
        for i in ins:
            if i >= 0:
                last[i] = max(last.get(i, step), step)
    for o in ([int(x) for x in graph.OutputsAsNumpy()] if graph.OutputsLength() else []):
        last[o] = steps - 1
    lives = [_Life(tensors[i]["name"], _aligned(tensors[i]["bytes"]), first[i], last.get(i, first[i]))
             for i in sorted(first) if not tensors[i]["constant"] and not tensors[i]["variable"]]
    peak, step = _peak(lives, steps)
    live = sorted((t for t in lives if t.start <= step <= t.end), key=lambda t: -t.bytes)
    node = f"{order[step][0]}_{step}" if order else ""
    return lives, node, tuple(LiveTensor(t.name, t.bytes) for t in live), peak


# What TensorFlow Lite Micro keeps in the arena's tail (persistent data) besides the planned tensors, as its
# RecordingMicroAllocator itemises it on a 64-bit host with the reference kernels (tflite-micro wheel, 2026):
TFLM_EVAL_TENSOR = 24  # a TfLiteEvalTensor for every tensor of the subgraph
TFLM_NODE = 64  # a NodeAndRegistration per operator
TFLM_OP_DATA = 64  # a kernel's OpData, on average per operator
TFLM_IO_TENSOR = 64 + 32  # a persistent TfLiteTensor and its quantization record per graph input and output
TFLM_FIXED = 640  # the allocator's and interpreter's own structures
# While a kernel prepares, TFLM holds temporary TfLiteTensors (with their quantization records) for the operator's
# inputs and outputs in the space the planned tensors take afterwards; a model whose planned tensors are smaller
# than that needs the difference too. Per tensor, as measured: 752 bytes for a 4-tensor FULLY_CONNECTED.
TFLM_TEMP_TENSOR = 188
PER_CHANNEL_KERNELS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def _aligned(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def tflm_arena_estimate(path: Path, planned: int) -> tuple[int, int, int]:
    """(total, tail, prepare) bytes of the arena TensorFlow Lite Micro allocates for the model at `path`, estimated
    from its structure (see the constants above) and `planned`, the greedy plan of its tensors
    (`Analysis.arena_bytes`, TFLM's own planner): the tail is the persistent data, per tensor, operator and graph
    input/output, plus each convolution's per-output-channel requantization (an int32 multiplier and an int32 shift
    per channel, two 16-byte-aligned arrays); `prepare` the temporary tensors of the largest operator while kernels
    prepare. The total is tail + max(planned, prepare)."""
    model = read(path)
    graph = model.Subgraphs(0)
    tail = TFLM_FIXED + TFLM_EVAL_TENSOR * graph.TensorsLength() + (TFLM_NODE + TFLM_OP_DATA) * graph.OperatorsLength()
    tail += TFLM_IO_TENSOR * (graph.InputsLength() + graph.OutputsLength())
    prepare = 0
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        used = [int(t) for t in [*op.InputsAsNumpy(), *op.OutputsAsNumpy()] if int(t) >= 0]
        prepare = max(prepare, TFLM_TEMP_TENSOR * len(used))
        if operator_name(model, op.OpcodeIndex())[0] in PER_CHANNEL_KERNELS and op.OutputsLength():
            out = graph.Tensors(int(op.OutputsAsNumpy()[0]))
            channels = int(out.ShapeAsNumpy()[-1]) if out.ShapeLength() else 1
            tail += 2 * _aligned(4 * channels)
    return tail + max(planned, prepare), tail, prepare
