"""MACs and memory of If/Loop/Scan models, against hand counts, on held-out graphs built with onnx.helper.

Each graph is also run with onnxruntime where that shows the hand count's shapes are the real ones.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from shrink.analysis import Analysis, analyze
from tests.test_analysis import _init, _model, _sane, _vi

I64 = TensorProto.INT64
F = TensorProto.FLOAT


def _const(name: str, value: object, dtype: type = np.int64) -> TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _branch(name: str, nodes: list[onnx.NodeProto], output: str, inits: list[TensorProto]) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [_vi(output, None)], inits)


# If: convolutions in one branch, an LSTM in the other ---------------------------------------------------

def _conv_or_lstm() -> onnx.ModelProto:
    then = _branch("convs", [
        helper.make_node("Conv", ["img", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
        helper.make_node("Flatten", ["c2"], ["out_then"])], "out_then",
        [_init("w1", [8, 3, 3, 3]), _init("w2", [8, 8, 3, 3])])
    other = _branch("lstm", [
        helper.make_node("LSTM", ["seq", "lw", "lr"], ["y", "y_h"], hidden_size=48, name="lstm"),
        helper.make_node("Flatten", ["y_h"], ["out_else"], axis=2)], "out_else",
        [_init("lw", [1, 192, 16]), _init("lr", [1, 192, 48])])
    return _model([helper.make_node("If", ["use_image"], ["out"], then_branch=then, else_branch=other, name="if")],
                  [_vi("use_image", [], TensorProto.BOOL), _vi("img", [1, 3, 16, 16]), _vi("seq", [10, 1, 16])],
                  [_vi("out", None)])


def test_if_with_convs_in_one_branch_and_an_lstm_in_the_other() -> None:
    model = _conv_or_lstm()
    convs = 8 * 16 * 16 * (3 * 9) + 8 * 8 * 8 * (8 * 9)  # 55,296 + 36,864 = 92,160
    lstm = 10 * 1 * (4 * 48 * 16 + 4 * 48 * 48)  # steps x batch x (W + R) = 122,880
    a = _sane(analyze(model))
    assert a.macs == lstm == 122_880
    assert a.incomplete == ()
    assert a.macs_by_op == {"LSTM": lstm}
    assert [(s.body, s.macs, s.times, s.complete) for s in a.subgraph_macs] == [
        ("then_branch", convs, 0, True), ("else_branch", lstm, 1, True)]
    assert any("if" in note and "92,160" in note and "122,880" in note for note in a.notes)
    # the conv rows exist (nodes are listed) but add nothing: their branch is not the one counted
    conv_rows = [o for o in a.ops if o.op_type == "Conv"]
    assert sum(o.count for o in conv_rows) == 2 and sum(o.macs for o in conv_rows) == 0
    assert sum(o.macs for o in a.ops) == a.macs
    img, seq = np.ones((1, 3, 16, 16), np.float32), np.ones((10, 1, 16), np.float32)
    assert _run(model, {"use_image": np.array(True), "img": img, "seq": seq})[0].shape == (1, 8 * 8 * 8)
    assert _run(model, {"use_image": np.array(False), "img": img, "seq": seq})[0].shape == (1, 48)


# If: the costlier branch pads the way torch's exporter writes F.pad -------------------------------------

def _torch_style_pad(x: str, rank: int, targets: list[tuple[int, int]], prefix: str
                     ) -> tuple[list[onnx.NodeProto], list[TensorProto], str]:
    """`F.pad(x, pad)` as torch.onnx (opset 11+) exports it, with `pad` growing each (dim, size) of `targets`
    (last dim first, torch's order) to `size` at its end: the pad list from Shape/Gather arithmetic,
    extended with ConstantOfShape zeros, reshaped to pairs, flipped, transposed and flattened."""
    p = prefix
    nodes = [helper.make_node("Shape", [x], [f"{p}shape"]),
             helper.make_node("Unsqueeze", [f"{p}zero", f"{p}axis0"], [f"{p}zero1"])]
    pieces = []
    for dim, size in targets:
        nodes += [helper.make_node("Gather", [f"{p}shape", f"{p}d{dim}"], [f"{p}n{dim}"], axis=0),
                  helper.make_node("Sub", [f"{p}size{dim}", f"{p}n{dim}"], [f"{p}p{dim}"]),
                  helper.make_node("Unsqueeze", [f"{p}p{dim}", f"{p}axis0"], [f"{p}p{dim}_1"])]
        pieces += [f"{p}zero1", f"{p}p{dim}_1"]
    nodes += [
        helper.make_node("Concat", pieces, [f"{p}pad"], axis=0),
        helper.make_node("Shape", [f"{p}pad"], [f"{p}pad_len"]),
        helper.make_node("Sub", [f"{p}twice_rank", f"{p}pad_len"], [f"{p}extension"]),
        helper.make_node("ConstantOfShape", [f"{p}extension"], [f"{p}zeros"],
                         value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Concat", [f"{p}pad", f"{p}zeros"], [f"{p}padded"], axis=0),
        helper.make_node("Reshape", [f"{p}padded", f"{p}pairs"], [f"{p}pairs2"]),
        helper.make_node("Slice", [f"{p}pairs2", f"{p}m1", f"{p}mbig", f"{p}axis0", f"{p}m1"], [f"{p}flipped"]),
        helper.make_node("Transpose", [f"{p}flipped"], [f"{p}begins_ends"], perm=[1, 0]),
        helper.make_node("Reshape", [f"{p}begins_ends", f"{p}m1"], [f"{p}flat"]),
        helper.make_node("Cast", [f"{p}flat"], [f"{p}pads"], to=I64),
        helper.make_node("Pad", [x, f"{p}pads"], [f"{p}out"], mode="constant"),
    ]
    inits = [_const(f"{p}zero", 0), _const(f"{p}axis0", [0]), _const(f"{p}twice_rank", [2 * rank]),
             _const(f"{p}pairs", [-1, 2]), _const(f"{p}m1", [-1]), _const(f"{p}mbig", [-(2**62)])]
    for dim, size in targets:
        inits += [_const(f"{p}d{dim}", dim), _const(f"{p}size{dim}", size)]
    return nodes, inits, f"{p}out"


def _padded_if() -> onnx.ModelProto:
    pad_nodes, pad_inits, padded = _torch_style_pad("x", 4, [(3, 16), (2, 16)], "p_")
    then = _branch("pad_then_conv", [*pad_nodes, helper.make_node("Conv", [padded, "wt"], ["yt"], pads=[1, 1, 1, 1],
                                                                  name="conv")], "yt",
                   [*pad_inits, _init("wt", [8, 4, 3, 3])])
    other = _branch("strided", [helper.make_node("Conv", ["x", "we"], ["ye"], strides=[2, 2], pads=[1, 1, 1, 1],
                                                 name="conv_s2")], "ye", [_init("we", [8, 4, 3, 3])])
    return _model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if")],
                  [_vi("c", [], TensorProto.BOOL), _vi("x", [1, 4, 14, 14])], [_vi("y", None)])


def test_if_whose_costlier_branch_pads_like_torch_counts_that_branch() -> None:
    model = _padded_if()
    x = np.ones((1, 4, 14, 14), np.float32)
    assert _run(model, {"c": np.array(True), "x": x})[0].shape == (1, 8, 16, 16)  # padded to 16x16, then conv
    assert _run(model, {"c": np.array(False), "x": x})[0].shape == (1, 8, 7, 7)
    padded = 8 * 16 * 16 * (4 * 9)  # 73,728
    strided = 8 * 7 * 7 * (4 * 9)  # 14,112: what was reported before, silently
    a = _sane(analyze(model))
    assert (a.macs, a.incomplete) == (padded, ())
    assert {s.body: s.macs for s in a.subgraph_macs} == {"then_branch": padded, "else_branch": strided}
    # at the If: x, c, y (the larger branch output, 8x16x16 floats) and the then-branch working set
    # (the padded input 4x16x16 and the conv output 8x16x16 floats)
    assert a.peak_activation_bytes == 4 * 4 * 14 * 14 + 1 + 4 * 8 * 16 * 16 + 4 * (4 * 16 * 16 + 8 * 16 * 16)
    assert a.peak_live[0].name == "if/then_branch (working set)"


def test_if_with_a_branch_of_unknown_shapes_is_incomplete_not_the_cheaper_branch() -> None:
    then = _branch("custom", [helper.make_node("Foo", ["x"], ["f"], domain="my.ops", name="foo"),
                              helper.make_node("Conv", ["f", "wt"], ["yt"], pads=[1, 1, 1, 1], name="conv")], "yt",
                   [_init("wt", [8, 4, 3, 3])])
    other = _branch("strided", [helper.make_node("Conv", ["x", "we"], ["ye"], strides=[2, 2], pads=[1, 1, 1, 1])],
                    "ye", [_init("we", [8, 4, 3, 3])])
    model = _model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if")],
                   [_vi("c", [], TensorProto.BOOL), _vi("x", [1, 4, 14, 14])], [_vi("y", None)])
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    a = _sane(analyze(model))
    assert a.macs == 8 * 7 * 7 * 36  # what could be counted: a lower bound, and said so
    assert "node 'if' (If): then_branch incomplete: MACs are a lower bound (then_branch 0, else_branch 14,112 " \
           "MACs counted)" in a.incomplete
    assert "'if/then_branch': MACs of 1 node(s) not counted, shapes unknown: 'if/then_branch/conv' (Conv: shape " \
           "of 'yt')" in a.incomplete
    assert "op my.ops:Foo ×1 has no cost model: 'if/then_branch/foo'" in a.incomplete
    assert any(r.startswith("peak memory: sizes of") for r in a.incomplete)


# a voice-activity detector whose whole network lives in If branches -----------------------------------

def _vad_branch(name: str, stride: int) -> tuple[onnx.GraphProto, int]:
    """Reshape (from Shape arithmetic) -> Conv1d -> Relu -> Conv1d -> LSTM -> Gemm over the padded signal
    (576 samples) of the main graph, and its hand count."""
    p = f"{name}_"
    steps1 = (576 + 2 * 2 - 8) // stride + 1
    steps2 = (steps1 + 2 * 1 - 3) // 2 + 1
    nodes = [
        helper.make_node("Shape", ["signal"], [f"{p}s"]),
        helper.make_node("Gather", [f"{p}s", f"{p}zero"], [f"{p}batch"], axis=0),
        helper.make_node("Concat", [f"{p}batch", f"{p}one", f"{p}minus1"], [f"{p}shape3"], axis=0),
        helper.make_node("Reshape", ["signal", f"{p}shape3"], [f"{p}x3"]),
        helper.make_node("Conv", [f"{p}x3", f"{p}w1"], [f"{p}c1"], strides=[stride], pads=[2, 2], name=f"{p}conv1"),
        helper.make_node("Relu", [f"{p}c1"], [f"{p}r1"]),
        helper.make_node("Conv", [f"{p}r1", f"{p}w2"], [f"{p}c2"], strides=[2], pads=[1, 1], name=f"{p}conv2"),
        helper.make_node("Transpose", [f"{p}c2"], [f"{p}seq"], perm=[2, 0, 1]),
        helper.make_node("LSTM", [f"{p}seq", f"{p}lw", f"{p}lr"], [f"{p}y", f"{p}yh"], hidden_size=64,
                         name=f"{p}lstm"),
        helper.make_node("Squeeze", [f"{p}yh", f"{p}zero1"], [f"{p}h"]),
        helper.make_node("Gemm", [f"{p}h", f"{p}fc"], [f"{p}prob"], transB=1, name=f"{p}fc"),
    ]
    inits = [_const(f"{p}zero", [0]), _const(f"{p}one", [1]), _const(f"{p}minus1", [-1]), _const(f"{p}zero1", [0]),
             _init(f"{p}w1", [16, 1, 8]), _init(f"{p}w2", [32, 16, 3]), _init(f"{p}lw", [1, 256, 32]),
             _init(f"{p}lr", [1, 256, 64]), _init(f"{p}fc", [1, 64])]
    macs = 16 * steps1 * 8 + 32 * steps2 * 16 * 3 + steps2 * (256 * 32 + 256 * 64) + 64
    return _branch(name, nodes, f"{p}prob", inits), macs


def _vad() -> tuple[onnx.ModelProto, int, int]:
    at_16k, macs_16k = _vad_branch("sr16k", stride=4)
    at_8k, macs_8k = _vad_branch("sr8k", stride=8)
    pad_nodes, pad_inits, padded = _torch_style_pad("audio", 2, [(1, 576)], "ctx_")
    model = _model([*pad_nodes, helper.make_node("Identity", [padded], ["signal"]),
                    helper.make_node("Equal", ["sr", "k16"], ["is16k"]),
                    helper.make_node("If", ["is16k"], ["prob"], then_branch=at_16k, else_branch=at_8k, name="by_rate")],
                   [_vi("audio", ["batch", 512]), _vi("sr", [], I64)], [_vi("prob", None)],
                   [_const("k16", 16000), *pad_inits])
    return model, macs_16k, macs_8k


def test_vad_with_every_conv_and_lstm_in_if_branches() -> None:
    """The issue's voice-activity model: the signal the branches read is padded the torch way in the main
    graph, so plain shape inference knows no shape inside either branch (0 MACs before)."""
    model, macs_16k, macs_8k = _vad()
    # 16 kHz: conv1 16 x 144 steps x 8, conv2 32 x 72 x 48, LSTM 72 steps x (W 256x32 + R 256x64), fc 64
    assert (macs_16k, macs_8k) == (18_432 + 110_592 + 1_769_472 + 64, 9_216 + 55_296 + 884_736 + 64)
    a = _sane(analyze(model, {"audio": [1, 512]}))
    assert a.macs == macs_16k == 1_898_560
    assert a.incomplete == ()
    assert a.macs_by_dtype == {"float32": macs_16k}
    assert {s.body: s.macs for s in a.subgraph_macs} == {"then_branch": macs_16k, "else_branch": macs_8k}
    feeds = {"audio": np.ones((1, 512), np.float32)}
    assert _run(model, {**feeds, "sr": np.array(16000)})[0].shape == (1, 1)
    assert _run(model, {**feeds, "sr": np.array(8000)})[0].shape == (1, 1)


# Loop and Scan --------------------------------------------------------------------------------------------

def _loop(trip: str, body_nodes: list[onnx.NodeProto] | None = None, carried_shape: list[int] | None = None,
          extra_nodes: list[onnx.NodeProto] = (), inits: list[TensorProto] = (), x_shape: list[object] = (1, 16),
          cond_out: str = "cond_in") -> onnx.ModelProto:
    body_nodes = body_nodes or [helper.make_node("MatMul", ["h_in", "w"], ["h"], name="mm")]
    body = helper.make_graph(
        [*body_nodes, helper.make_node("Identity", [cond_out], ["cond_out"])], "body",
        [_vi("i", [], I64), _vi("cond_in", [], TensorProto.BOOL), _vi("h_in", carried_shape)],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("h", None)], [_init("w", [16, 16])])
    return _model([*extra_nodes, helper.make_node("Loop", [trip, "cond", "x"], ["y"], body=body, name="loop")],
                  [_vi("x", list(x_shape))], [_vi("y", None)],
                  [numpy_helper.from_array(np.array(True), "cond"), *inits])


def test_loop_with_a_constant_trip_count() -> None:
    a = _sane(analyze(_loop("trips", inits=[_const("trips", 5)])))
    assert a.macs == 5 * 16 * 16
    assert a.incomplete == ()
    assert [(s.node, s.body, s.macs, s.times, s.times_known) for s in a.subgraph_macs] == [
        ("loop", "body", 256, 5, True)]
    assert "Loop 'loop': body counted 5 times (trip count 5)" in a.notes


@pytest.mark.parametrize("steps", [3, 7])
def test_loop_trip_count_pinned_by_the_input_shape(steps: int) -> None:
    shape_nodes = [helper.make_node("Shape", ["frames"], ["fs"]),
                   helper.make_node("Gather", ["fs", "one"], ["n_frames"], axis=0)]
    model = _loop("n_frames", extra_nodes=shape_nodes, inits=[_const("one", 1)])
    model.graph.input.append(_vi("frames", [1, "T", 16]))
    a = _sane(analyze(model, {"frames": [1, steps, 16]}))
    assert (a.macs, a.incomplete) == (steps * 256, ())


def test_loop_with_a_data_dependent_trip_count_is_incomplete() -> None:
    count_nodes = [helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
                   helper.make_node("Cast", ["mx"], ["n"], to=I64)]
    a = _sane(analyze(_loop("n", extra_nodes=count_nodes)))
    assert a.macs == 256  # the body once: a lower bound
    assert a.incomplete == ("Loop 'loop': trip count 'n' not constant: body MACs counted once, a lower bound",)
    assert not a.subgraph_macs[0].times_known


def test_while_loops_are_incomplete() -> None:
    """torch exports `while` as a Loop with INT64_MAX trips and a condition; ONNX allows no trip count."""
    sentinel = _sane(analyze(_loop("big", inits=[_const("big", 2**63 - 1)])))
    assert sentinel.incomplete == (("Loop 'loop': trip count 9223372036854775807 is no bound: the loop runs until "
                                   "its condition is false: body MACs counted once, a lower bound"),)
    model = _loop("trips", inits=[_const("trips", 5)])
    model.graph.node[0].input[0] = ""
    assert analyze(model).incomplete[0].startswith("Loop 'loop': no trip count")


def test_loop_whose_carried_tensor_grows_is_incomplete() -> None:
    grow = [helper.make_node("MatMul", ["h_in", "w"], ["m"], name="mm"),
            helper.make_node("Concat", ["h_in", "m"], ["h"], axis=0)]
    a = _sane(analyze(_loop("trips", body_nodes=grow, inits=[_const("trips", 3)])))
    assert a.incomplete == (("Loop 'loop': loop-carried 'h_in' changes shape [1, 16] -> [2, 16]: MACs use the "
                            "first iteration's shapes"),)


def test_scan_counts_its_body_once_per_step() -> None:
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "wx"], ["a"], name="mm_x"),
         helper.make_node("MatMul", ["h_in", "wh"], ["b"], name="mm_h"),
         helper.make_node("Add", ["a", "b"], ["s"]),
         helper.make_node("Tanh", ["s"], ["h_out"]),
         helper.make_node("Identity", ["h_out"], ["y_t"])],
        "step", [_vi("h_in", None), _vi("x_t", None)], [_vi("h_out", None), _vi("y_t", None)],
        [_init("wx", [8, 16]), _init("wh", [16, 16])])
    model = _model([helper.make_node("Scan", ["h0", "xs"], ["h_last", "ys"], body=body, num_scan_inputs=1,
                                     name="scan")],
                   [_vi("h0", [1, 16]), _vi("xs", [6, 1, 8])], [_vi("h_last", None), _vi("ys", None)])
    a = _sane(analyze(model))
    assert a.macs == 6 * (1 * 16 * 8 + 1 * 16 * 16)
    assert a.incomplete == ()
    out = _run(model, {"h0": np.zeros((1, 16), np.float32), "xs": np.ones((6, 1, 8), np.float32)})
    assert out[1].shape == (6, 1, 16)


def test_if_nested_in_a_loop() -> None:
    def branch(name: str, width: int) -> onnx.GraphProto:
        return _branch(name, [helper.make_node("MatMul", ["h_in", f"w{width}"], [f"o{width}"], name=f"mm{width}"),
                              helper.make_node("Slice", [f"o{width}", "s0", "s16", "s1"], [f"r{width}"])],
                       f"r{width}", [_init(f"w{width}", [16, width])])
    body_nodes = [helper.make_node("Greater", ["i", "one_in"], ["late"]),
                  helper.make_node("If", ["late"], ["h"], then_branch=branch("narrow", 16),
                                   else_branch=branch("wide", 32), name="pick")]
    model = _loop("trips", body_nodes=body_nodes, carried_shape=[1, 16],
                  inits=[_const("trips", 4), _const("one_in", 1), _const("s0", [0]), _const("s16", [16]),
                         _const("s1", [1])])
    a = _sane(analyze(model))
    assert a.macs == 4 * 16 * 32  # four iterations of the costlier branch
    assert a.incomplete == ()
    wide = next(s for s in a.subgraph_macs if s.body == "else_branch")
    assert (wide.node, wide.macs, wide.times) == ("loop/body/pick", 512, 4)
    assert a.subgraphs == ("loop", "loop/body/pick")


def test_per_row_macs_sum_to_the_total(tmp_path: object) -> None:
    """MobileViT's inspect table showed `Conv 1,092,354,048` on two dtype rows: each row now has its own."""
    model = _model([helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1], name="with_bias"),
                    helper.make_node("Conv", ["c", "w2"], ["y"], name="no_bias")],
                   [_vi("x", [1, 3, 8, 8])], [_vi("y", None)],
                   [_init("w1", [8, 3, 3, 3]), _init("b1", [8]), _init("w2", [4, 8, 1, 1])])
    a: Analysis = _sane(analyze(model))
    rows = {o.dtypes: o.macs for o in a.ops if o.op_type == "Conv"}
    assert rows == {("float32", "float32", "float32"): 8 * 64 * 27, ("float32", "float32"): 4 * 64 * 8}
    assert sum(rows.values()) == a.macs_by_op["Conv"] == a.macs


def test_a_loop_that_never_ends_on_zeros_stops_the_measuring_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan output of a Loop without a bound needs a run to size it; on zeros the condition never turns
    false, so the run is stopped and the sizes are reported unknown."""
    import shrink.analysis.measure

    monkeypatch.setattr(shrink.analysis.measure, "RUN_SECONDS", 0.3)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Relu", ["h_in"], ["h"]),
         helper.make_node("Identity", ["h"], ["scan_out"])], "body",
        [_vi("i", [], I64), _vi("cond_in", [], TensorProto.BOOL), _vi("h_in", [1, 16])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("h", None), _vi("scan_out", None)])
    model = _model([helper.make_node("Loop", ["", "cond", "x"], ["y", "ys"], body=body, name="loop"),
                    helper.make_node("Relu", ["ys"], ["z"])], [_vi("x", [1, 16])], [_vi("y", None), _vi("z", None)],
                   [numpy_helper.from_array(np.array(True), "cond")])
    a = _sane(analyze(model))
    assert a.incomplete[0].startswith("Loop 'loop': no trip count")
    assert a.incomplete[1].startswith("peak memory: sizes of 2 tensor(s) unknown ('ys', 'z')")
    assert any("stopped after 0.3 s" in note for note in a.notes)
