"""Quantized and fused ops count the MACs of the float graph they replace.

Each quantized graph is made the way it arises in practice: onnxruntime.quantization (`quantize_dynamic`,
`quantize_static` in QDQ and QOperator formats, `MatMulNBitsQuantizer`) and onnxruntime's offline
optimizer, on small float graphs built here; the fused attention ops are checked against their float
decomposition by running both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from shrink.analysis import Analysis, analyze
from tests.test_analysis import _model, _sane, _vi

RNG = np.random.default_rng(0)


def _w(name: str, shape: list[int], scale: float = 0.1) -> TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def _optimized(model: onnx.ModelProto | Path, tmp_path: Path, name: str = "opt") -> onnx.ModelProto:
    """The graph onnxruntime's offline optimizer writes at the portable EXTENDED level."""
    source = model if isinstance(model, Path) else tmp_path / f"{name}_in.onnx"
    if not isinstance(model, Path):
        onnx.save(model, source)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / f"{name}.onnx")
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return onnx.load(tmp_path / f"{name}.onnx")


def _ops(a: Analysis) -> set[str]:
    return {o.op_type for o in a.ops}


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


# a Conv + LSTM + MatMul + Gemm model through onnxruntime's quantizers ------------------------------------

CONV = 8 * 16 * 16 * (3 * 9)  # 55,296
LSTM = 16 * 1 * (4 * 32 * 128 + 4 * 32 * 32)  # 16 steps x batch 1 x (W + R) = 327,680
MATMUL, GEMM = 1 * 24 * 32, 1 * 10 * 24


@pytest.fixture(scope="module")
def conv_lstm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "as_sequence"], ["seq"]),  # [1, 8, 16, 16] -> [16, 1, 128]
             helper.make_node("LSTM", ["seq", "lw", "lr", "lb"], ["y", "y_h"], hidden_size=32, name="lstm"),
             helper.make_node("Squeeze", ["y_h", "axis0"], ["h"]),
             helper.make_node("MatMul", ["h", "mw"], ["m"], name="mm"),
             helper.make_node("Gemm", ["m", "gw", "gb"], ["out"], transB=1, name="fc")]
    inits = [_w("cw", [8, 3, 3, 3]), _w("cb", [8]), numpy_helper.from_array(np.array([16, 1, 128]), "as_sequence"),
             _w("lw", [1, 128, 128]), _w("lr", [1, 128, 32]), _w("lb", [1, 256]),
             numpy_helper.from_array(np.array([0]), "axis0"), _w("mw", [32, 24]), _w("gw", [10, 24]), _w("gb", [10])]
    model = _model(nodes, [_vi("x", [1, 3, 16, 16])], [_vi("out", [1, 10])], inits)
    model.ir_version = 8
    path = tmp_path_factory.mktemp("conv_lstm") / "float.onnx"
    onnx.save(model, path)
    return path


def test_the_float_source(conv_lstm: Path) -> None:
    a = _sane(analyze(conv_lstm))
    assert a.macs_by_op == {"Conv": CONV, "LSTM": LSTM, "MatMul": MATMUL, "Gemm": GEMM}
    assert a.macs_by_dtype == {"float32": a.macs}


def test_quantize_dynamic_keeps_the_float_macs(conv_lstm: Path, tmp_path: Path) -> None:
    """The issue saw 910.6 M -> 776.4 M MACs: DynamicQuantizeLSTM had no rule."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(conv_lstm, tmp_path / "dyn.onnx", weight_type=QuantType.QInt8)
    a = _sane(analyze(tmp_path / "dyn.onnx"))
    assert _ops(a) >= {"ConvInteger", "DynamicQuantizeLSTM", "MatMulInteger"}
    # quantize_dynamic writes the Gemm as MatMulInteger + Add
    assert a.macs_by_op == {"ConvInteger": CONV, "DynamicQuantizeLSTM": LSTM, "MatMulInteger": MATMUL + GEMM}
    assert (a.macs_by_dtype, a.incomplete) == ({"int8": CONV + LSTM + MATMUL + GEMM}, ())
    fused = _sane(analyze(_optimized(tmp_path / "dyn.onnx", tmp_path)))
    assert fused.macs_by_op == {"ConvInteger": CONV, "DynamicQuantizeLSTM": LSTM,
                                "DynamicQuantizeMatMul": MATMUL + GEMM}
    assert fused.macs_by_dtype == {"int8": CONV + LSTM + MATMUL + GEMM}


class _Calibration:
    def __init__(self) -> None:
        self.feeds = iter([{"x": RNG.random((1, 3, 16, 16), np.float32)} for _ in range(4)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


@pytest.mark.parametrize("fmt", ["QDQ", pytest.param("QOperator", marks=pytest.mark.slow)])
def test_quantize_static_keeps_the_float_macs(conv_lstm: Path, tmp_path: Path, fmt: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    reader = type("Reader", (_Calibration, CalibrationDataReader), {})()
    quantize_static(conv_lstm, tmp_path / "static.onnx", reader, quant_format=getattr(QuantFormat, fmt),
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    a = _sane(analyze(tmp_path / "static.onnx"))
    int8 = CONV + MATMUL + GEMM
    # QDQ: float ops whose inputs are all DequantizeLinear of int8/uint8 (and a Conv's output quantized) run
    # as int8 kernels; the LSTM was not quantized and stays float
    assert (a.macs, a.macs_by_dtype, a.incomplete) == (int8 + LSTM, {"float32": LSTM, "int8": int8}, ())
    fused = _sane(analyze(_optimized(tmp_path / "static.onnx", tmp_path)))
    assert fused.macs_by_op == {"QLinearConv": CONV, "LSTM": LSTM, "QLinearMatMul": MATMUL, "QGemm": GEMM}
    assert fused.macs_by_dtype == a.macs_by_dtype


def _qdq(op: str, x_shape: list[int], w: np.ndarray, output_q: bool) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(w, "wq"), numpy_helper.from_array(np.array(0.01, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"), numpy_helper.from_array(np.array(128, np.uint8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "s", "wz"], ["wd"]),
             helper.make_node(op, ["xd", "wd"], ["f"], name="op")]
    if output_q:
        nodes += [helper.make_node("QuantizeLinear", ["f", "s", "z"], ["fq"]),
                  helper.make_node("DequantizeLinear", ["fq", "s", "z"], ["y"])]
    else:
        nodes.append(helper.make_node("Identity", ["f"], ["y"]))
    return _model(nodes, [_vi("x", x_shape)], [_vi("y", None)], inits)


def test_qdq_matmul_without_an_output_quantizer_is_int8_and_a_conv_is_not(tmp_path: Path) -> None:
    """onnxruntime fuses DQ -> MatMul into MatMulIntegerToFloat, but leaves DQ -> Conv -> (float) alone."""
    matmul = _qdq("MatMul", [4, 32], RNG.integers(-100, 100, (32, 24)).astype(np.int8), output_q=False)
    assert _sane(analyze(matmul)).macs_by_dtype == {"int8": 4 * 24 * 32}
    fused = _sane(analyze(_optimized(matmul, tmp_path, "mm")))
    assert "MatMulIntegerToFloat" in _ops(fused) and fused.macs_by_dtype == {"int8": 4 * 24 * 32}
    weights = RNG.integers(-100, 100, (8, 3, 3, 3)).astype(np.int8)
    conv = _qdq("Conv", [1, 3, 8, 8], weights, output_q=False)
    assert _sane(analyze(conv)).macs_by_dtype == {"float32": 8 * 6 * 6 * 27}
    assert "Conv" in _ops(analyze(_optimized(conv, tmp_path, "conv")))
    quantized = _qdq("Conv", [1, 3, 8, 8], weights, output_q=True)
    assert _sane(analyze(quantized)).macs_by_dtype == {"int8": 8 * 6 * 6 * 27}
    assert "QLinearConv" in _ops(analyze(_optimized(quantized, tmp_path, "qconv")))


def test_fused_matmul_with_a_transposed_input(tmp_path: Path) -> None:
    model = _model([helper.make_node("Transpose", ["a"], ["at"], perm=[1, 0]), helper.make_node("MatMul", ["at", "b"], ["y"])],
                   [_vi("a", [16, 4]), _vi("b", [16, 8])], [_vi("y", [4, 8])])
    fused = _sane(analyze(_optimized(model, tmp_path)))
    assert analyze(model).macs_by_op == {"MatMul": 4 * 8 * 16}
    assert fused.macs_by_op == {"FusedMatMul": 4 * 8 * 16}


# attention ------------------------------------------------------------------------------------------------

B, S, H, HEADS = 2, 6, 32, 4
HEAD = H // HEADS


def _heads(x: str, out: str, length: int, perm: list[int]) -> list[onnx.NodeProto]:
    return [helper.make_node("Reshape", [x, f"shape_{length}"], [f"{out}_4d"]),
            helper.make_node("Transpose", [f"{out}_4d"], [out], perm=perm)]


def _float_attention(q: str, k: str, v: str, kv_len: int) -> list[onnx.NodeProto]:
    """Scaled dot-product attention over heads, as exporters write it."""
    return [*_heads(q, "qh", S, [0, 2, 1, 3]), *_heads(k, "kh", kv_len, [0, 2, 3, 1]),
            *_heads(v, "vh", kv_len, [0, 2, 1, 3]),
            helper.make_node("MatMul", ["qh", "kh"], ["scores"], name="scores"),
            helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
            helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
            helper.make_node("MatMul", ["probs", "vh"], ["ctx"], name="context"),
            helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["ctx_t", "merged"], ["y"])]


def _shapes(*lengths: int) -> list[TensorProto]:
    return [numpy_helper.from_array(np.array([B, n, HEADS, HEAD]), f"shape_{n}") for n in lengths] + [
        numpy_helper.from_array(np.array([B, S, H]), "merged"),
        numpy_helper.from_array(np.array(HEAD ** -0.5, np.float32), "scale")]


@pytest.mark.slow
def test_attention_and_qattention_count_their_float_decomposition(tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    w, b = _w("w", [H, 3 * H]), _w("b", [3 * H])
    fused = _model([helper.make_node("Attention", ["x", "w", "b"], ["y"], domain="com.microsoft", num_heads=HEADS,
                                     name="attention")], [_vi("x", [B, S, H])], [_vi("y", None)], [w, b], ms=True)
    plain = _model([helper.make_node("MatMul", ["x", "w"], ["qkv0"], name="qkv"),
                    helper.make_node("Add", ["qkv0", "b"], ["qkv"]),
                    helper.make_node("Split", ["qkv", "thirds"], ["q", "k", "v"], axis=-1),
                    *_float_attention("q", "k", "v", S)],
                   [_vi("x", [B, S, H])], [_vi("y", None)],
                   [w, b, numpy_helper.from_array(np.array([H, H, H]), "thirds"), *_shapes(S)])
    x = RNG.standard_normal((B, S, H)).astype(np.float32)
    np.testing.assert_allclose(_run(fused, {"x": x})[0], _run(plain, {"x": x})[0], atol=1e-5)
    projections, scores, context = B * S * H * 3 * H, B * HEADS * S * S * HEAD, B * HEADS * S * HEAD * S
    assert _sane(analyze(plain)).macs == projections + scores + context == 41_472
    assert _sane(analyze(fused)).macs_by_op == {"Attention": 41_472}
    onnx.save(fused, tmp_path / "attention.onnx")
    quantize_dynamic(tmp_path / "attention.onnx", tmp_path / "qattention.onnx", weight_type=QuantType.QInt8)
    q = _sane(analyze(tmp_path / "qattention.onnx"))
    assert (q.macs_by_op, q.macs_by_dtype, q.incomplete) == ({"QAttention": 41_472}, {"int8": 41_472}, ())


def test_multi_head_attention_counts_its_float_decomposition() -> None:
    kv_len = 9
    inputs = [_vi("q", [B, S, H]), _vi("k", [B, kv_len, H]), _vi("v", [B, kv_len, H])]
    fused = _model([helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain="com.microsoft",
                                     num_heads=HEADS, name="mha")], inputs, [_vi("y", None)], ms=True)
    plain = _model(_float_attention("q", "k", "v", kv_len), inputs, [_vi("y", None)], _shapes(S, kv_len))
    feeds = {n: RNG.standard_normal(s).astype(np.float32) for n, s in
             [("q", (B, S, H)), ("k", (B, kv_len, H)), ("v", (B, kv_len, H))]}
    np.testing.assert_allclose(_run(fused, feeds)[0], _run(plain, feeds)[0], atol=1e-5)
    assert _sane(analyze(plain)).macs == 2 * B * HEADS * S * kv_len * HEAD == 6_912
    assert _sane(analyze(fused)).macs_by_op == {"MultiHeadAttention": 6_912}


# weight-only int4/int8 ----------------------------------------------------------------------------------

@pytest.mark.slow  # importing the quantizer (onnx_ir) takes about a second
@pytest.mark.parametrize("bits", [4, 8])
def test_matmul_nbits_counts_k_and_n_from_its_attributes(bits: int) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
                    helper.make_node("Gather", ["table", "ids"], ["e"], name="embed")],
                   [_vi("x", [2, 5, 64]), _vi("ids", [2, 5], TensorProto.INT64)], [_vi("y", None), _vi("e", None)],
                   [_w("w", [64, 48]), _w("table", [100, 64])])
    model.opset_import[0].version, model.ir_version = 21, 10
    assert analyze(model).macs == 2 * 5 * 64 * 48
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=32, is_symmetric=True,
                                     op_types_to_quantize=("MatMul", "Gather"),
                                     quant_axes=(("MatMul", 0), ("Gather", 1)))
    quantizer.process()
    quantized = quantizer.model.model
    packed = next(t for t in quantized.graph.initializer if t.name.startswith("w_Q"))
    assert list(packed.dims) == [48, 2, 32 * bits // 8]  # [N, K / block, block bytes]: K is not in the shape
    a = _sane(analyze(quantized))
    assert _ops(a) == {"MatMulNBits", "GatherBlockQuantized" if bits == 4 else "Gather"}  # 8-bit Gather stays
    assert (a.macs_by_op, a.macs_by_dtype, a.incomplete) == ({"MatMulNBits": 30_720}, {f"int{bits}": 30_720}, ())
    # weights: the packed B counts as its K x N weights in its packed bytes; the 4-bit table is typed int4
    table = {"params": 100 * 64, "bytes": 100 * 64 // 2} if bits == 4 else {"params": 0, "bytes": 0}
    assert a.weights_by_dtype[f"int{bits}"] == {"params": 64 * 48 + table["params"],
                                                 "bytes": 48 * 2 * 32 * bits // 8 + table["bytes"]}


# ops that cost nothing, and ops with no cost model ----------------------------------------------------------

def test_fused_elementwise_ops_cost_nothing() -> None:
    ms = "com.microsoft"
    model = _model([helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta"], ["n"], domain=ms),
                    helper.make_node("Gelu", ["n"], ["g"], domain=ms),
                    helper.make_node("FastGelu", ["g", "bias"], ["f"], domain=ms),
                    helper.make_node("BiasGelu", ["f", "bias"], ["bg"], domain=ms),
                    helper.make_node("QuickGelu", ["bg"], ["y"], domain=ms)],
                   [_vi("x", [1, 4, 16]), _vi("skip", [1, 4, 16])], [_vi("y", None)],
                   [_w("gamma", [16]), _w("beta", [16]), _w("bias", [16])], ms=True)
    a = _sane(analyze(model))
    assert (a.macs, a.incomplete) == (0, ())
    assert a.peak_activation_bytes > 0


def test_ops_without_a_cost_model_are_incomplete_not_zero() -> None:
    """A matrix inverse and a DFT compute far more than elementwise: no rule, so the figure is incomplete."""
    model = _model([helper.make_node("Inverse", ["m"], ["inv"], domain="com.microsoft", name="inverse"),
                    helper.make_node("DFT", ["signal"], ["spectrum"], name="dft"),
                    helper.make_node("MatMul", ["inv", "inv"], ["y"], name="mm")],
                   [_vi("m", [3, 3]), _vi("signal", [1, 16, 1])], [_vi("y", None), _vi("spectrum", None)], ms=True)
    a = _sane(analyze(model))
    assert a.macs == 27
    assert a.incomplete == ("op ai.onnx:DFT ×1 has no cost model: 'dft'",
                            "op com.microsoft:Inverse ×1 has no cost model: 'inverse'")


def test_which_ops_have_a_cost_model() -> None:
    from shrink.analysis.op_costs import has_cost_model

    assert has_cost_model("ai.onnx", "Relu") and has_cost_model("ai.onnx", "Conv")
    assert has_cost_model("com.microsoft", "SkipLayerNormalization") and has_cost_model("com.microsoft", "QAttention")
    assert not has_cost_model("ai.onnx", "NoSuchOp")  # not in the standard: not assumed elementwise
    assert not has_cost_model("ai.onnx", "STFT")
    assert not has_cost_model("com.microsoft", "DecoderMaskedMultiHeadAttention")
    assert not has_cost_model("ai.onnx.ml", "TreeEnsembleClassifier")


def test_an_op_whose_shapes_cannot_be_measured_is_incomplete() -> None:
    """GroupQueryAttention has a rule, but onnxruntime cannot run it on zero inputs to size its outputs."""
    kv = 2 * HEAD
    model = _model([helper.make_node("GroupQueryAttention", ["q", "k", "v", "pk", "pv", "seqlens", "total"],
                                     ["y", "present_k", "present_v"], domain="com.microsoft", num_heads=HEADS,
                                     kv_num_heads=2, name="gqa")],
                   [_vi("q", [1, S, H]), _vi("k", [1, S, kv]), _vi("v", [1, S, kv]), _vi("pk", [1, 2, 3, HEAD]),
                    _vi("pv", [1, 2, 3, HEAD]), _vi("seqlens", [1], TensorProto.INT32),
                    _vi("total", [], TensorProto.INT32)],
                   [_vi("y", None), _vi("present_k", None), _vi("present_v", None)], ms=True)
    a = _sane(analyze(model))
    assert a.macs == 0
    assert a.incomplete[0] == ("the main graph: MACs of 1 node(s) not counted, shapes unknown: 'gqa' "
                               "(GroupQueryAttention: shape of 'y')")
    assert any("total_sequence_length" in note for note in a.notes)


@pytest.mark.slow
def test_a_bert_through_the_transformers_optimizer_and_quantize_dynamic(tmp_path: Path) -> None:
    """transformers' BertModel (from a config) exported by torch, fused by onnxruntime's transformers optimizer
    (Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu), then quantize_dynamic (QAttention,
    QEmbedLayerNormalization, MatMulInteger): the same MACs at every step."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    bert = BertModel(config, add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    ids = torch.ones(1, 16, dtype=torch.long)
    torch.onnx.export(Encoder(), (ids, ids), tmp_path / "bert.onnx", dynamo=False, opset_version=17,
                      input_names=["ids", "mask"], dynamic_axes={"ids": {1: "seq"}, "mask": {1: "seq"}})
    shapes = {"ids": [1, 16], "mask": [1, 16]}
    # per layer: Q, K, V and output projections 4 x 16 x 32 x 32, scores and context 2 x 16 x 16 x 32,
    # FFN 2 x 16 x 32 x 64
    per_layer = 4 * 16 * 32 * 32 + 2 * 16 * 16 * 32 + 2 * 16 * 32 * 64
    exported = _sane(analyze(tmp_path / "bert.onnx", shapes))
    assert (exported.macs, exported.incomplete) == (2 * per_layer, ())
    optimize_model(str(tmp_path / "bert.onnx"), model_type="bert", num_heads=4, hidden_size=32,
                   opt_level=0).save_model_to_file(str(tmp_path / "fused.onnx"))
    fused = _sane(analyze(tmp_path / "fused.onnx", shapes))
    assert _ops(fused) >= {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu"}
    assert (fused.macs, fused.incomplete) == (2 * per_layer, ())
    assert fused.macs_by_op["Attention"] == 2 * (3 * 16 * 32 * 32 + 2 * 16 * 16 * 32)
    quantize_dynamic(tmp_path / "fused.onnx", tmp_path / "int8.onnx", weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    int8 = _sane(analyze(tmp_path / "int8.onnx", shapes))
    assert _ops(int8) >= {"QAttention", "QEmbedLayerNormalization", "MatMulInteger"}
    assert (int8.macs, int8.macs_by_dtype, int8.incomplete) == (2 * per_layer, {"int8": 2 * per_layer}, ())


def test_macs_by_dtype_follows_the_macs_not_the_parameters() -> None:
    """The issue's MobileNetV3: most parameters int8, ~97% of the MACs in float Conv; the latency estimate took
    the parameters' majority dtype. Here a float conv holds 216 parameters and 96% of the MACs, an int8
    classifier 32,768 parameters and 4%."""
    inits = [_w("cw", [8, 3, 3, 3]), numpy_helper.from_array(np.ones((32768, 1), np.int8), "fq"),
             numpy_helper.from_array(np.array(0.01, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.array(0, np.uint8), "uz"), numpy_helper.from_array(np.array([1, 32768]), "flat")]
    model = _model([helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                    helper.make_node("Reshape", ["c", "flat"], ["f"]),
                    helper.make_node("QuantizeLinear", ["f", "s", "uz"], ["fq8"]),
                    helper.make_node("DequantizeLinear", ["fq8", "s", "uz"], ["fd"]),
                    helper.make_node("DequantizeLinear", ["fq", "s", "z"], ["wd"]),
                    helper.make_node("MatMul", ["fd", "wd"], ["y"], name="classifier")],
                   [_vi("x", [1, 3, 64, 64])], [_vi("y", None)], inits)
    a = _sane(analyze(model))
    assert a.weights_by_dtype["int8"]["params"] > 100 * a.weights_by_dtype["float32"]["params"]
    assert a.macs_by_dtype == {"float32": 8 * 4096 * 27, "int8": 32768}
    assert a.macs_by_dtype["float32"] / a.macs > 0.96
