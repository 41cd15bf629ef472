"""Static ONNX analysis against hand counts, on tiny graphs built with onnx.helper (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from shrink.analysis import Analysis, AnalysisError, LiveTensor, analyze, load_model, parse_shape
from shrink.errors import UsageError

F = TensorProto.FLOAT


def _init(name: str, shape: list[int], dtype: type = np.float32) -> TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: Sequence[TensorProto] = (), ms: bool = False) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=opsets)


def _vi(name: str, shape: list[int | str] | None, dtype: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _sane(a: Analysis) -> Analysis:
    assert a.arena_bytes >= a.peak_activation_bytes
    assert sum(a.macs_by_dtype.values()) == sum(a.macs_by_op.values()) == sum(o.macs for o in a.ops) == a.macs
    assert all(o.macs == sum(m for _, m in o.macs_by_dtype) for o in a.ops)
    json.dumps(a.as_dict())
    return a


# MACs ------------------------------------------------------------------------------------------------

def test_conv_and_depthwise_conv() -> None:
    model = _model(
        [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Conv", ["c1", "w2"], ["y"], pads=[1, 1, 1, 1], group=8, name="dw")],
        [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 8, 8, 8])],
        [_init("w1", [8, 3, 3, 3]), _init("b1", [8]), _init("w2", [8, 1, 3, 3])])
    a = _sane(analyze(model))
    assert a.macs_by_op == {"Conv": 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 1 * 9}
    assert a.macs == 13824 + 4608
    assert a.params == 216 + 8 + 72
    assert a.weight_bytes == 4 * 296
    assert a.weights_by_dtype == {"float32": {"params": 296, "bytes": 1184}}


def test_strided_conv_transpose() -> None:
    model = _model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])],
                   [_vi("x", [1, 4, 5, 5])], [_vi("y", None)], [_init("w", [4, 2, 3, 3])])
    assert analyze(model).macs == 4 * 25 * 2 * 9


@pytest.mark.parametrize("trans_a", [0, 1])
def test_gemm(trans_a: int) -> None:
    a_shape = [16, 2] if trans_a else [2, 16]
    model = _model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=trans_a, transB=1)],
                   [_vi("a", a_shape)], [_vi("y", [2, 4])], [_init("b", [4, 16]), _init("c", [4])])
    a = _sane(analyze(model))
    assert a.macs == 2 * 4 * 16
    assert a.params == 68


def test_matmul_with_batch_broadcasting() -> None:
    model = _model(
        [helper.make_node("MatMul", ["a", "w"], ["p"]),
         helper.make_node("MatMul", ["b", "p"], ["y"])],
        [_vi("a", [2, 3, 5, 7]), _vi("b", [1, 3, 6, 5])], [_vi("y", [2, 3, 6, 4])], [_init("w", [7, 4])])
    a = _sane(analyze(model))
    # p = a @ w: [2,3,5,4], K = 7; y = b @ p broadcasts [1,3] with [2,3]: [2,3,6,4], K = 5
    assert a.macs_by_op == {"MatMul": 2 * 3 * 5 * 4 * 7 + 2 * 3 * 6 * 4 * 5}


def test_einsum_and_bidirectional_lstm() -> None:
    model = _model(
        [helper.make_node("Einsum", ["a", "b"], ["e"], equation="bij,bjk->bik"),
         helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=20, direction="bidirectional")],
        [_vi("a", [2, 3, 4]), _vi("b", [2, 4, 5]), _vi("x", [7, 1, 10])], [_vi("e", None), _vi("y", None)],
        [_init("w", [2, 80, 10]), _init("r", [2, 80, 20])])
    a = _sane(analyze(model))
    assert a.macs_by_op == {"Einsum": 2 * 3 * 4 * 5, "LSTM": 7 * 1 * (1600 + 3200)}


# peak memory -------------------------------------------------------------------------------------------

def _branching() -> onnx.ModelProto:
    return _model(
        [helper.make_node("Relu", ["x"], ["a"], name="relu"),
         helper.make_node("Concat", ["a", "a", "a", "a"], ["b"], axis=1, name="expand"),
         helper.make_node("MatMul", ["b", "w"], ["c"], name="shrink"),
         helper.make_node("Add", ["a", "c"], ["y"], name="add")],
        [_vi("x", [1, 100])], [_vi("y", [1, 100])], [_init("w", [400, 100])])


def test_branch_keeps_tensor_alive_and_sets_the_peak() -> None:
    a = _sane(analyze(_branching()))
    # step 2 ("shrink"): a (skip branch, 400 B) + b (1600 B) + c (400 B)
    assert a.peak_activation_bytes == 2400
    assert a.peak_node == "shrink"
    assert a.peak_live == (LiveTensor("b", 1600), LiveTensor("a", 400), LiveTensor("c", 400))
    assert a.arena_bytes == 2400
    assert a.input_bytes == 400 and a.output_bytes == 400
    assert a.macs == 400 * 100


def test_without_the_branch_the_peak_is_lower() -> None:
    model = _branching()
    model.graph.node[3].input[0] = "c"
    a = analyze(model)
    assert a.peak_activation_bytes == 2000
    assert a.peak_node == "expand"


def test_view_ops_alias_their_input_and_extend_its_life() -> None:
    shape = helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array([2, 12], np.int64)))
    model = _model(
        [shape,
         helper.make_node("Relu", ["x"], ["a"], name="relu"),
         helper.make_node("Reshape", ["a", "s"], ["v"], name="view_a"),
         helper.make_node("Exp", ["x"], ["b"], name="exp"),
         helper.make_node("Reshape", ["b", "s"], ["c"], name="view_b"),
         helper.make_node("Add", ["v", "c"], ["y"], name="add")],
        [_vi("x", [1, 24])], [_vi("y", [2, 12])])
    a = _sane(analyze(model))
    # a lives until "add" through its view v; x dies at "exp": x + a + b = 288 B, first at "exp"
    assert a.peak_activation_bytes == 288
    assert a.peak_node == "exp"
    assert {t.name for t in a.peak_live} == {"x", "a", "b"}
    assert a.arena_bytes == 288
    assert a.params == 2 and a.weights_by_dtype == {"int64": {"params": 2, "bytes": 16}}


def test_constant_node_is_a_weight_not_an_activation() -> None:
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones((4, 3), np.float32)))
    model = _model([const, helper.make_node("Transpose", ["c"], ["ct"], perm=[1, 0]),
                    helper.make_node("Transpose", ["ct"], ["c2"], perm=[1, 0]),
                    helper.make_node("MatMul", ["x", "c2"], ["y"], name="mm")],
                   [_vi("x", [2, 4])], [_vi("y", [2, 3])])
    a = _sane(analyze(model))
    assert (a.params, a.weight_bytes, a.macs) == (12, 48, 24)
    assert a.peak_activation_bytes == 32 + 24
    assert a.peak_node == "mm"
    # the Constant becomes an initializer at load and the Transposes that read only it are folded: none of them
    # runs, so only the MatMul counts in the latency estimate's node overhead
    from shrink.checks.estimates import nodes_by_dtype

    assert len(a.folded_nodes) == 3 and sum(nodes_by_dtype(a.ops, a.folded_nodes).values()) == 1


# quantized graphs --------------------------------------------------------------------------------------

def _qdq_conv() -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "wq"),
             numpy_helper.from_array(np.full(8, 0.1, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(8, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz")]
    return _model(
        [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
         helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
         helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0, name="dq_w"),
         helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1], name="conv")],
        [_vi("x", [1, 4, 8, 8])], [_vi("y", [1, 8, 8, 8])], inits)


def test_qdq_weights_count_as_int8_and_dequantized_weight_is_not_an_activation() -> None:
    a = _sane(analyze(_qdq_conv()))
    assert a.weights_by_dtype == {"float32": {"params": 9, "bytes": 36}, "int8": {"params": 296, "bytes": 296},
                                  "uint8": {"params": 1, "bytes": 1}}
    assert (a.params, a.weight_bytes) == (306, 333)
    assert a.macs == 8 * 64 * 4 * 9
    # at "conv": xd (1024 B) + y (2048 B); the 1152 B dequantized weight is not live memory
    assert a.peak_activation_bytes == 3072
    assert a.peak_node == "conv"
    assert "wd" not in {t.name for t in a.peak_live}


def test_qlinearconv_and_matmulinteger() -> None:
    u8 = TensorProto.UINT8
    inits = [numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "wq"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.ones((512, 10), np.int8), "mq")]
    model = _model(
        [helper.make_node("QLinearConv", ["xq", "s", "z", "wq", "s", "wz", "s", "z"], ["yq"], pads=[1, 1, 1, 1]),
         helper.make_node("Flatten", ["yq"], ["f"]),
         helper.make_node("MatMulInteger", ["f", "mq", "z", "wz"], ["y"])],
        [_vi("xq", [1, 4, 8, 8], u8)], [_vi("y", [1, 10], TensorProto.INT32)], inits)
    a = _sane(analyze(model))
    assert a.macs_by_op == {"QLinearConv": 8 * 64 * 36, "MatMulInteger": 512 * 10}
    assert a.weights_by_dtype["int8"] == {"params": 288 + 1 + 5120, "bytes": 5409}
    qconv = next(o for o in a.ops if o.op_type == "QLinearConv")
    assert qconv.dtypes == ("uint8", "float32", "uint8", "int8", "float32", "int8", "float32", "uint8")
    assert (qconv.domain, qconv.opset, qconv.count) == ("ai.onnx", 17, 1)
    assert qconv.nodes == ("QLinearConv#0",)
    assert a.opsets == {"ai.onnx": 17}
    assert a.nodes == 3


# fused com.microsoft ops and the onnxruntime fallback ----------------------------------------------------

def test_fused_conv_shapes_come_from_onnxruntime() -> None:
    model = _model(
        [helper.make_node("FusedConv", ["x", "w"], ["c"], domain="com.microsoft", activation="Relu",
                          pads=[1, 1, 1, 1], name="fconv"),
         helper.make_node("FusedMatMul", ["c", "m"], ["y"], domain="com.microsoft", name="fmm")],
        [_vi("x", [1, 3, 8, 8])], [_vi("y", None)], [_init("w", [4, 3, 3, 3]), _init("m", [8, 5])], ms=True)
    a = _sane(analyze(model))
    assert a.macs_by_op == {"FusedConv": 4 * 64 * 27, "FusedMatMul": 4 * 8 * 5 * 8}
    assert a.peak_activation_bytes == 768 + 1024
    assert a.output_bytes == 4 * 8 * 5 * 4


def test_fallback_reads_external_data(tmp_path: Path) -> None:
    model = _model([helper.make_node("FusedConv", ["x", "w"], ["y"], domain="com.microsoft", pads=[1, 1, 1, 1])],
                   [_vi("x", [1, 3, 8, 8])], [_vi("y", None)], [_init("w", [4, 3, 3, 3])], ms=True)
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    assert analyze(tmp_path / "m.onnx").macs == 4 * 64 * 27


def test_unknown_op_that_onnxruntime_cannot_run_is_incomplete_not_zero() -> None:
    model = helper.make_model(
        helper.make_graph([helper.make_node("Foo", ["x"], ["z"], domain="my.ops", name="foo"),
                           helper.make_node("Relu", ["z"], ["y"])], "g", [_vi("x", [1, 4])], [_vi("y", None)]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)])
    a = _sane(analyze(model))
    assert a.macs == 0
    assert a.incomplete[0] == "op my.ops:Foo ×1 has no cost model: 'foo'"
    assert a.incomplete[1].startswith("peak memory: sizes of 2 tensor(s) unknown ('z', 'y')")
    assert any("onnxruntime could not run the model" in note for note in a.notes)


# dynamic dims --------------------------------------------------------------------------------------------

def _dynamic() -> onnx.ModelProto:
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", ["batch", "seq", 16])],
                  [_vi("y", ["batch", "seq", 8])], [_init("w", [16, 8])])


def test_unpinned_dynamic_dim_is_an_error_naming_input_and_dim() -> None:
    with pytest.raises(AnalysisError) as info:
        analyze(_dynamic())
    assert isinstance(info.value, UsageError)
    message = str(info.value)
    assert "input 'x' dim 0 ('batch') is not fixed" in message
    assert "--shape x=<batch>x<seq>x16" in message


def test_every_unpinned_input_is_named_in_one_message() -> None:
    """Silero VAD's input and state were each reported in turn, one --shape per attempt."""
    model = _model([helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "s"], ["y"])],
                   [_vi("x", ["batch", 16]), _vi("s", [2, "batch", 8])], [_vi("y", [2, "batch", 8])], [_init("w", [16, 8])])
    with pytest.raises(AnalysisError) as info:
        analyze(model)
    assert "input 'x' dim 0 ('batch') is not fixed, nor are dims of 's': pass --shape x=<batch>x16 " \
           "--shape s=2x<batch>x8" in str(info.value)
    assert analyze(model, shapes={"x": [1, 16], "s": [2, 1, 8]}).macs == 128


def test_pinned_dynamic_dims_give_exact_macs() -> None:
    a = _sane(analyze(_dynamic(), {"x": [2, 10, 16]}))
    assert a.macs == 2 * 10 * 8 * 16
    assert a.input_bytes == 2 * 10 * 16 * 4
    assert a.peak_activation_bytes == 4 * (320 + 160)


@pytest.mark.parametrize(("shapes", "match"), [
    ({"x": [2, 10]}, "has 2 dims but the input has rank 3"),
    ({"x": [2, 10, 15]}, "sets dim 2 to 15 but the model fixes it at 16"),
    ({"w": [16, 8]}, "not an input of the model"),
])
def test_bad_pins(shapes: dict[str, list[int]], match: str) -> None:
    with pytest.raises(AnalysisError, match=match):
        analyze(_dynamic(), shapes)


@pytest.mark.parametrize(("text", "expected"), [
    ("x=1x3x224x224", ("x", [1, 3, 224, 224])),
    ("input_ids=1,128", ("input_ids", [1, 128])),
    ("a=b=7", ("a=b", [7])),
])
def test_parse_shape(text: str, expected: tuple[str, list[int]]) -> None:
    assert parse_shape(text) == expected


@pytest.mark.parametrize("text", ["x", "=1x2", "x=", "x=1xx2", "x=1x0", "x=-1x2", "x=1.5"])
def test_parse_shape_rejects_bad_syntax(text: str) -> None:
    with pytest.raises(AnalysisError, match="bad --shape"):
        parse_shape(text)


# bad files and broken graphs -----------------------------------------------------------------------------

def test_missing_empty_garbage_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="nope.onnx: no such file"):
        load_model(tmp_path / "nope.onnx")
    for name, data in [("empty.onnx", b""), ("text.onnx", b"hello, I am not a model\n"),
                       ("junk.onnx", bytes(range(256)) * 4)]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AnalysisError, match=f"{name}: "):
            analyze(tmp_path / name)
    data = _qdq_conv().SerializeToString()
    path = tmp_path / "cut.onnx"
    for cut in range(1, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(AnalysisError, match="cut.onnx: "):
            load_model(path)


def test_truncated_initializer_data(tmp_path: Path) -> None:
    model = _branching()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:100]
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(AnalysisError, match="initializer 'w' holds 100 bytes but its shape"):
        load_model(tmp_path / "m.onnx")


def test_dangling_input_names_node_and_file(tmp_path: Path) -> None:
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv1"),
                    helper.make_node("Conv", ["c", "w9"], ["y"], name="conv2")],
                   [_vi("x", [1, 1, 8, 8])], [_vi("y", None)], [_init("w", [1, 1, 3, 3])])
    onnx.save(model, tmp_path / "model.onnx")
    with pytest.raises(AnalysisError) as info:
        analyze(tmp_path / "model.onnx")
    assert str(info.value) == (f"{tmp_path / 'model.onnx'}: node 'conv2' input 'w9' is produced by no node and is "
                               "not an initializer or graph input")
    with pytest.raises(AnalysisError, match="model 'g': node 'conv2' input 'w9'"):
        analyze(model)


def test_missing_initializer_and_unproduced_output() -> None:
    model = _branching()
    del model.graph.initializer[:]
    with pytest.raises(AnalysisError, match="node 'shrink' input 'w' is produced by no node"):
        analyze(model)
    model = _branching()
    model.graph.output[0].name = "ghost"
    with pytest.raises(AnalysisError, match="graph output 'ghost' is produced by no node"):
        analyze(model)


def test_missing_external_data(tmp_path: Path) -> None:
    model = _branching()
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0)
    assert analyze(tmp_path / "m.onnx").params == 40000
    (tmp_path / "m.data").unlink()
    with pytest.raises(AnalysisError, match="initializer 'w' is stored in external file 'm.data', which is missing"):
        load_model(tmp_path / "m.onnx")


# control flow --------------------------------------------------------------------------------------------

def test_loop_body_weights_and_macs_are_counted() -> None:
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "w"], ["h"], name="mm"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("h_in", [1, 4])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("h", [1, 4])], [_init("w", [4, 4])])
    inits = [numpy_helper.from_array(np.array(3, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "cond")]
    model = _model([helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body, name="loop")],
                   [_vi("x", [1, 4])], [_vi("y", [1, 4])], inits)
    a = _sane(analyze(model))
    assert a.subgraphs == ("loop",)
    assert a.macs == 3 * 16
    assert a.params == 16 + 1 + 1
    assert a.nodes == 3
    assert any(o.op_type == "MatMul" and o.nodes == ("loop/body/mm",) for o in a.ops)
    assert any("loop" in note for note in a.notes)


def test_if_counts_the_costlier_branch() -> None:
    def branch(name: str, width: int) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("MatMul", ["x", f"w{width}"], [f"o{width}"]),
                                  helper.make_node("ReduceSum", [f"o{width}"], [f"r{width}"], keepdims=0)],
                                 name, [], [_vi(f"r{width}", [])], [_init(f"w{width}", [8, width])])
    model = _model([helper.make_node("If", ["c"], ["y"], then_branch=branch("then", 2),
                                     else_branch=branch("else", 6), name="if")],
                   [_vi("c", [], TensorProto.BOOL), _vi("x", [1, 8])], [_vi("y", [])])
    a = _sane(analyze(model))
    assert a.macs == 8 * 6
    assert a.params == 16 + 48
    assert a.subgraphs == ("if",)


# a realistic CNN (the digits student layout, BN folded as the torch exporter does) ----------------------

def _digits_student(batch: int | str = 1) -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    prev, cin = "input", 1
    for k, (cout, pool) in enumerate([(8, True), (16, True), (16, False), (24, True)]):
        inits += [_init(f"conv{k}.w", [cout, cin, 3, 3]), _init(f"conv{k}.b", [cout])]
        nodes += [helper.make_node("Conv", [prev, f"conv{k}.w", f"conv{k}.b"], [f"c{k}"], pads=[1, 1, 1, 1],
                                   kernel_shape=[3, 3], name=f"conv{k}"),
                  helper.make_node("Relu", [f"c{k}"], [f"r{k}"], name=f"relu{k}")]
        prev, cin = f"r{k}", cout
        if pool:
            nodes.append(helper.make_node("MaxPool", [prev], [f"p{k}"], kernel_shape=[2, 2], strides=[2, 2]))
            prev = f"p{k}"
    inits += [_init("fc.w", [16, 384]), _init("fc.b", [16]), _init("cls.w", [10, 16]), _init("cls.b", [10])]
    nodes += [helper.make_node("Flatten", [prev], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["h"], transB=1, name="fc"),
              helper.make_node("Relu", ["h"], ["hr"]),
              helper.make_node("Gemm", ["hr", "cls.w", "cls.b"], ["logits"], transB=1, name="classifier")]
    return _model(nodes, [_vi("input", [batch, 1, 32, 32])], [_vi("logits", [batch, 10])], inits)


def test_digits_student_layout_matches_the_documented_counts() -> None:
    a = _sane(analyze(_digits_student()))
    assert a.macs == 743_584
    assert a.params == 13_442 - 128 + 64
    assert a.peak_activation_bytes == 2 * 8 * 32 * 32 * 4
    assert a.peak_node == "relu0"
    assert a.macs_by_op == {"Conv": 737_280, "Gemm": 6_304}


def test_digits_student_after_onnxruntime_fusion(tmp_path: Path) -> None:
    import onnxruntime as ort

    onnx.save(_digits_student(), tmp_path / "m.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(tmp_path / "m.onnx"), options, providers=["CPUExecutionProvider"])
    fused = onnx.load(tmp_path / "fused.onnx")
    del fused.graph.value_info[:]
    a = _sane(analyze(fused))
    assert {o.op_type for o in a.ops} >= {"FusedConv"}
    assert a.macs == 743_584
    # fused conv+relu: the peak moves to the first MaxPool (its input and output)
    assert a.peak_activation_bytes == 8 * 32 * 32 * 4 + 8 * 16 * 16 * 4


def test_dynamic_batch_is_pinned_from_shapes() -> None:
    assert analyze(_digits_student("N"), {"input": [4, 1, 32, 32]}).macs == 4 * 743_584


def test_local_functions_are_inlined_and_counted() -> None:
    body = helper.make_function("my.fns", "ConvRelu", ["x", "w"], ["y"],
                                [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                                 helper.make_node("Relu", ["c"], ["y"])], [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("ConvRelu", ["x", "w"], ["y"], domain="my.fns", name="block")], "g",
                              [_vi("x", [1, 3, 8, 8])], [_vi("y", None)], [_init("w", [8, 3, 3, 3])])
    model = helper.make_model(graph, functions=[body],
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.fns", 1)])
    a = _sane(analyze(model))
    assert (a.macs, a.incomplete) == (8 * 64 * 27, ())
    assert {o.op_type for o in a.ops} == {"Conv", "Relu"}
    assert "1 local function(s) inlined before counting" in a.notes


def test_analysis_imports_no_torch() -> None:
    code = ("import sys, onnx; from shrink.analysis import analyze; from onnx import helper as h, TensorProto as T;"
            "g = h.make_graph([h.make_node('Relu', ['x'], ['y'])], 'g', [h.make_tensor_value_info('x', T.FLOAT, [1])],"
            "[h.make_tensor_value_info('y', T.FLOAT, [1])]); analyze(h.make_model(g));"
            "assert 'torch' not in sys.modules, 'torch imported';"
            "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported for a graph inference types fully'")
    subprocess.run([sys.executable, "-c", code], check=True)
