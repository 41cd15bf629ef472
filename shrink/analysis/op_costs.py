"""What one node costs: a MAC rule per (domain, op type), the ops that cost no MACs, and the dtype its
MACs run in.

Quantized and fused forms count the MACs of the float op they replace (a QLinearConv as its Conv, a
DynamicQuantizeLSTM as its LSTM, an Attention as its projections and score/context products), so a
quantized graph reports the MACs of its float source. Elementwise, normalization, pooling and
data-movement ops cost 0 by convention. Any other op, including every op of a domain not listed here,
has no cost model: the analysis reports it as incomplete instead of counting 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx
from onnx import NodeProto

from shrink.analysis.dtypes import dtype_name
from shrink.analysis.model import _numel
from shrink.analysis.shapes import _shape, _Types, _Uncounted

_MacRule = Callable[[NodeProto, _Types], int]


def _attr(node: NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _input(node: NodeProto, index: int) -> str:
    return node.input[index] if index < len(node.input) else ""


def _conv_rule(weight_index: int) -> _MacRule:
    def rule(node: NodeProto, types: _Types) -> int:
        weight = _shape(types, node.input[weight_index])
        return _numel(_shape(types, node.output[0])) * _numel(weight[1:])
    return rule


def _conv_transpose_rule(weight_index: int) -> _MacRule:
    def rule(node: NodeProto, types: _Types) -> int:
        return _numel(_shape(types, node.input[0])) * _numel(_shape(types, node.input[weight_index])[1:])
    return rule


def _matmul_rule(a_index: int, trans_attr: str | None = None) -> _MacRule:
    def rule(node: NodeProto, types: _Types) -> int:
        if _attr(node, "transBatchA", 0) or _attr(node, "transBatchB", 0):
            raise _Uncounted("transBatchA/transBatchB not supported")
        a = _shape(types, node.input[a_index])
        transposed = bool(trans_attr and _attr(node, trans_attr, 0)) and len(a) >= 2
        k = a[-2] if transposed else a[-1]
        return _numel(_shape(types, node.output[0])) * k
    return rule


def _matmul_packed(node: NodeProto, types: _Types) -> int:
    """MatMulNBits / MatMulBnb4: B is packed, so K and N come from the attributes."""
    k, n = int(_attr(node, "K", 0)), int(_attr(node, "N", 0))
    if k <= 0 or n <= 0:
        raise _Uncounted("attributes K and N missing")
    return _numel(_shape(types, node.input[0])) // k * n * k


def _recurrent(node: NodeProto, types: _Types) -> int:
    """RNN/GRU/LSTM and DynamicQuantizeLSTM (W and R transposed there, same element count)."""
    x = _shape(types, node.input[0])
    steps, batch = (x[1], x[0]) if _attr(node, "layout", 0) else (x[0], x[1])
    return steps * batch * (_numel(_shape(types, node.input[1])) + _numel(_shape(types, node.input[2])))


def _attention_onnx(node: NodeProto, types: _Types) -> int:
    key = _shape(types, node.input[1])
    if len(node.output) > 1 and node.output[1]:
        kv_len = _shape(types, node.output[1])[-2]
    else:
        kv_len = key[-2] if len(key) == 4 else key[1]
    return (_numel(_shape(types, node.input[0])) + _numel(_shape(types, node.output[0]))) * kv_len


def _attention_rule(past_index: int) -> _MacRule:
    """com.microsoft Attention/QAttention: the packed QKV projection plus the score and context products."""
    def rule(node: NodeProto, types: _Types) -> int:
        if not _input(node, 1):
            raise _Uncounted("no weights input")
        x = _shape(types, node.input[0])
        weights = _shape(types, node.input[1])
        sizes = _attr(node, "qkv_hidden_sizes", None) or [weights[-1] // 3] * 3
        kv_len = x[-2]
        if len(node.output) > 1 and node.output[1]:
            kv_len = _shape(types, node.output[1])[-2]  # present: [2, batch, heads, past + sequence, head size]
        elif _input(node, past_index):
            kv_len += _shape(types, node.input[past_index])[-2]
        rows = _numel(x[:-1])
        return rows * _numel(weights) + rows * kv_len * (sizes[0] + sizes[2])
    return rule


def _multi_head_attention(node: NodeProto, types: _Types) -> int:
    """com.microsoft MultiHeadAttention: query x key scores and attention x value, per head."""
    query = _shape(types, node.input[0])
    if not _input(node, 1):  # packed QKV: [batch, sequence, heads, 3, head size]
        if len(query) != 5:
            raise _Uncounted("packed QKV input of an unsupported rank")
        return 2 * _numel(query[:3]) * query[1] * query[4]
    key = _shape(types, node.input[1])
    kv_len = key[2] if len(key) == 4 else key[1]
    if len(node.output) > 1 and node.output[1]:
        kv_len = _shape(types, node.output[1])[-2]  # present key: [batch, heads, past + sequence, head size]
    elif _input(node, 6):
        kv_len += _shape(types, node.input[6])[-2]
    return (_numel(query) + _numel(_shape(types, node.output[0]))) * kv_len


def _group_query_attention(node: NodeProto, types: _Types) -> int:
    """com.microsoft GroupQueryAttention: scores and context of every query head over the whole key cache."""
    out = _shape(types, node.output[0])
    if len(node.output) > 1 and node.output[1]:
        total = _shape(types, node.output[1])[-2]
    else:
        total = out[1] + (_shape(types, node.input[3])[-2] if _input(node, 3) else 0)
    return 2 * _numel(out) * total


def _einsum(node: NodeProto, types: _Types) -> int:
    equation = _attr(node, "equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    operands = equation.replace(" ", "").split("->")[0].split(",")
    inputs = [i for i in node.input if i]
    if "..." in equation or len(operands) != len(inputs):
        raise _Uncounted(f"equation '{equation}' not supported")
    if len(operands) < 2:
        return 0
    sizes: dict[str, int] = {}
    for letters, name in zip(operands, inputs):
        sizes.update(zip(letters, _shape(types, name)))
    return _numel(sizes.values())


_MS = "com.microsoft"
MAC_RULES: dict[tuple[str, str], _MacRule] = {
    ("ai.onnx", "Conv"): _conv_rule(1),
    ("ai.onnx", "ConvInteger"): _conv_rule(1),
    ("ai.onnx", "QLinearConv"): _conv_rule(3),
    ("ai.onnx", "DeformConv"): _conv_rule(1),
    ("ai.onnx", "ConvTranspose"): _conv_transpose_rule(1),
    ("ai.onnx", "Gemm"): _matmul_rule(0, "transA"),
    ("ai.onnx", "MatMul"): _matmul_rule(0),
    ("ai.onnx", "MatMulInteger"): _matmul_rule(0),
    ("ai.onnx", "QLinearMatMul"): _matmul_rule(0),
    ("ai.onnx", "Einsum"): _einsum,
    ("ai.onnx", "RNN"): _recurrent,
    ("ai.onnx", "GRU"): _recurrent,
    ("ai.onnx", "LSTM"): _recurrent,
    ("ai.onnx", "Attention"): _attention_onnx,
    (_MS, "FusedConv"): _conv_rule(1),
    (_MS, "NhwcConv"): _conv_rule(1),
    (_MS, "NhwcFusedConv"): _conv_rule(1),
    (_MS, "QLinearConv"): _conv_rule(3),
    (_MS, "ConvTransposeWithDynamicPads"): _conv_transpose_rule(1),
    (_MS, "QLinearConvTranspose"): _conv_transpose_rule(3),
    (_MS, "FusedGemm"): _matmul_rule(0, "transA"),
    (_MS, "FusedMatMul"): _matmul_rule(0, "transA"),
    (_MS, "QGemm"): _matmul_rule(0, "transA"),
    (_MS, "DynamicQuantizeMatMul"): _matmul_rule(0),
    (_MS, "MatMulIntegerToFloat"): _matmul_rule(0),
    (_MS, "MatMulNBits"): _matmul_packed,
    (_MS, "MatMulBnb4"): _matmul_packed,
    (_MS, "DynamicQuantizeLSTM"): _recurrent,
    (_MS, "Attention"): _attention_rule(past_index=4),
    (_MS, "QAttention"): _attention_rule(past_index=8),
    (_MS, "MultiHeadAttention"): _multi_head_attention,
    (_MS, "GroupQueryAttention"): _group_query_attention,
}

# ops of the standard domain that compute more than elementwise and have no rule
_UNCOSTED_ONNX = frozenset({"DFT", "STFT", "Det"})

_ZERO_COST: dict[str, frozenset[str]] = {
    _MS: frozenset({
        "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "BiasSplitGelu", "BiasAdd", "BiasSoftmax", "BiasDropout",
        "BitmaskDropout", "BitmaskBiasDropout", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
        "SimplifiedLayerNormalization", "LayerNormalization", "EmbedLayerNormalization", "GroupNorm",
        "SkipGroupNorm", "RotaryEmbedding", "GatherBlockQuantized", "QuantizeLinear", "DequantizeLinear",
        "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QLinearConcat",
        "QLinearWhere", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearReduceMean", "NhwcMaxPool",
        "MaxpoolWithMask", "Affine", "Crop", "ImageScaler", "ParametricSoftplus", "ScaledTanh",
        "ThresholdedRelu", "Scale", "ExpandDims", "Range", "Pad", "Trilu", "Unique", "CropAndResize",
        "GridSample", "MurmurHash3", "NGramRepeatBlock", "IsAllFinite", "QuantizeWithOrder",
        "DequantizeWithOrder", "Tokenizer", "QEmbedLayerNormalization", "RelativePositionBias",
    }),
    "com.microsoft.nchwc": frozenset({"ReorderInput", "ReorderOutput", "MaxPool", "AveragePool", "GlobalMaxPool",
                                      "GlobalAveragePool", "Upsample"}),
    "ai.onnx.ml": frozenset({"ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer",
                             "FeatureVectorizer", "Imputer", "LabelEncoder", "Normalizer", "OneHotEncoder", "Scaler",
                             "ZipMap"}),
}

# kernels that run their MACs on integers
_INT8_KERNELS = frozenset({"QLinearConv", "QLinearConvTranspose", "QLinearMatMul", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat",
                           "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QGemm", "QAttention"})
# float ops onnxruntime fuses with the DequantizeLinear nodes on their inputs into an int8 kernel; the
# Conv family needs a QuantizeLinear on its output too (a QLinearConv writes int8)
# (onnxruntime 1.32 leaves a QDQ ConvTranspose in float)
_QDQ_FUSED = {"Conv": 2, "MatMul": 2, "Gemm": 2}
_QDQ_NEEDS_OUTPUT_Q = frozenset({"Conv"})


def has_cost_model(domain: str, op_type: str) -> bool:
    """False for an op that computes more than elementwise and that no rule counts."""
    if (domain, op_type) in MAC_RULES:
        return True
    if domain == "ai.onnx":
        return op_type not in _UNCOSTED_ONNX and onnx.defs.has(op_type)
    return op_type in _ZERO_COST.get(domain, frozenset())


def mac_dtype(node: NodeProto, types: _Types, dequantized: dict[str, str], quantized_outputs: set[str]) -> str:
    """The dtype `node`'s MACs run in. `dequantized` maps a DequantizeLinear output to its input's dtype;
    `quantized_outputs` holds the tensors every consumer of which is a QuantizeLinear."""
    if node.op_type in _INT8_KERNELS:
        return "int8"
    if node.op_type in ("MatMulNBits", "MatMulBnb4"):
        return f"int{int(_attr(node, 'bits', 4))}"
    data = [i for i in node.input[:_QDQ_FUSED.get(node.op_type, 0)] if i]
    if data and all(dequantized.get(i) in ("int8", "uint8") for i in data) and (
            node.op_type not in _QDQ_NEEDS_OUTPUT_Q or node.output[0] in quantized_outputs):
        return "int8"
    first = types.get(node.input[0]) if node.input else None
    name = dtype_name(first.elem) if first is not None else "undefined"
    return "float32" if name == "undefined" else name
