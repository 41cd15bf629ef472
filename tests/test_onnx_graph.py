"""`shrink_common.onnx_graph`: helpers the ONNX rewrites share."""

from __future__ import annotations

from onnx import TensorProto, helper


def test_fresh_names_avoid_the_names_of_subgraphs() -> None:
    """A name a subgraph (an If branch) defines is taken too: ONNX names must be unique in the whole model."""
    from shrink_common.onnx_graph import fresh_names

    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["scale"], name="inner")], "then", [],
                               [helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["scale_1"])], "else", [],
                              [helper.make_tensor_value_info("scale_1", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["cond"], ["y"], name="choose", then_branch=branch, else_branch=other)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    fresh = fresh_names(graph)
    assert fresh("scale") == "scale_2"  # "scale" and "scale_1" are the branches' outputs
    assert fresh("inner") == "inner_1" and fresh("choose") == "choose_1"
    assert fresh("new") == "new" and fresh("new") == "new_1"  # an earlier call's name is taken as well
