"""distill.quantization_aware: the torch rounding is ONNX Runtime's (bit for bit, linear weights and tables), the plan
refuses a later quantize.weight_only that rounds otherwise, and on a tiny BERT the trained student quantizes to int4
without loss (the int4 model computes what the float one does)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from shrink_common.block_rounding import RoundedWeights, round_activations, round_blocks
from tests.test_hf import tiny_recipe, write_tiny_bert
from tests.test_onnx_passes import compile_ok


def ort_rtn(model: onnx.ModelProto, op: str, block: int) -> ort.InferenceSession:
    from onnxruntime.quantization import matmul_nbits_quantizer as q

    config = q.DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, bits=4, op_types_to_quantize=(op,),
                                            quant_axes=(("MatMul", 0), ("Gather", -1)))
    quantizer = q.MatMulNBitsQuantizer(model, bits=4, block_size=block, is_symmetric=True, algo_config=config)
    quantizer.process()
    return ort.InferenceSession(quantizer.model.model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("k, n, block", [(64, 24, 16), (40, 8, 16), (96, 5, 32)])
def test_linear_rounding_is_onnxruntimes(k, n, block):
    """A MatMulNBits (float32 arithmetic) times the identity gives its dequantized weight: round_blocks of the torch
    layout [out, in] is exactly that, and rounding it again changes nothing."""
    rng = np.random.default_rng(k + n)
    weight = (rng.standard_normal((k, n)) * rng.uniform(0.01, 2, (1, n))).astype(np.float32)  # ONNX [K, N]
    weight[:block, 0] = 0.0  # an all-zero block
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [k, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [k, n])],
                              [numpy_helper.from_array(weight, "w")])
    sess = ort_rtn(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), "MatMul", block)
    (theirs,) = sess.run(None, {"x": np.eye(k, dtype=np.float32)})
    mine = round_blocks(torch.from_numpy(weight.T.copy()), block).numpy().T
    assert np.array_equal(mine, theirs)
    assert torch.equal(round_blocks(torch.from_numpy(mine.T.copy()), block), torch.from_numpy(mine.T.copy()))


def test_table_rounding_is_onnxruntimes():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((50, 64)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["t", "i"], ["y"], name="g")], "g",
                              [helper.make_tensor_value_info("i", TensorProto.INT64, [50])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [50, 64])],
                              [numpy_helper.from_array(table, "t")])
    sess = ort_rtn(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), "Gather", 32)
    (theirs,) = sess.run(None, {"i": np.arange(50, dtype=np.int64)})
    assert np.array_equal(round_blocks(torch.from_numpy(table), 32).numpy(), theirs)


@pytest.mark.parametrize("low, high", [(-3.0, 5.0), (0.5, 2.0), (-4.0, -1.0)])
def test_activation_rounding_is_dynamicquantizelinears(low, high):
    """DynamicQuantizeLinear then DequantizeLinear in ONNX Runtime gives what round_activations does."""
    x = np.random.default_rng(3).uniform(low, high, (4, 7, 24)).astype(np.float32)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    (theirs,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.allclose(round_activations(torch.from_numpy(x)).numpy(), theirs, rtol=0, atol=1e-6)


def test_rounded_weights_train_straight_through_and_bake_onto_the_grid():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 32), torch.nn.Linear(32, 16), torch.nn.Embedding(3, 32))
    rounded = RoundedWeights(model, block=16, table_block=32, exclude=("2",))
    assert list(rounded.linears) == ["1"] and list(rounded.tables) == ["0"] and rounded.kept_float == ["2"]
    assert not model[0].weight.requires_grad and torch.equal(model[0].weight, round_blocks(model[0].weight, 32))
    out = model[1](model[0](torch.tensor([1, 2])))
    out.sum().backward()
    latent = model[1].parametrizations.weight.original
    assert torch.allclose(latent.grad, torch.ones(2, 16).T @ model[0](torch.tensor([1, 2])))  # the float gradient
    rounded.bake()
    assert not rounded.off_grid() and not hasattr(model[1], "parametrizations")
    x = torch.randn(3, 32)
    with_inputs = RoundedWeights(model, block=16, table_block=32, exclude=("0", "2"), activations=True)
    assert torch.equal(model[1](x), torch.nn.functional.linear(round_activations(x), round_blocks(model[1].weight, 16),
                                                               model[1].bias))
    with_inputs.bake()
    assert torch.equal(model[1](x), torch.nn.functional.linear(x, model[1].weight, model[1].bias))  # hooks gone
    with pytest.raises(ValueError, match="match no linear layer or embedding"):
        RoundedWeights(model, 16, 16, exclude=("*nothing*",))


def test_defaults_are_quantize_weight_onlys():
    from shrink_huggingface.quantization_aware import WEIGHT_ONLY_DEFAULTS
    from shrink_onnx.weight_only import QuantizeWeightOnlyOptions

    theirs = QuantizeWeightOnlyOptions()
    assert {key: getattr(theirs, key) for key in WEIGHT_ONLY_DEFAULTS} == {
        **WEIGHT_ONLY_DEFAULTS, "op_types": tuple(WEIGHT_ONLY_DEFAULTS["op_types"])}


QAT = {"pass": "distill.quantization_aware", "block_size": 16, "epochs": 1, "batch_size": 16}


@pytest.mark.parametrize("later, message", [
    (None, "the recipe has none after it"),
    ({"block_size": 32}, "block_size 16 differs from the quantize.weight_only pass's 32"),
    ({"block_size": 16, "algorithm": "hqq"}, "re-fits the blocks"),
    ({"block_size": 16, "op_types": ["MatMul"]}, "keeps the embedding tables"),
    ({"block_size": 16, "table_block_size": 64}, "table_block_size 16 differs"),
    ({"block_size": 16, "symmetric": False}, "asymmetric"),
    ({"block_size": 16, "kernel": "nbits"}, "activations 'int8' trains for kernel 'int8'"),
])
def test_a_later_weight_only_pass_that_rounds_otherwise_is_refused(cli, tiny_bert, tmp_path, later, message):
    qat = {**QAT, "activations": "int8"} if "kernel" in (later or {}) else QAT
    passes = [qat, {"pass": "export.onnx"}] + ([{"pass": "quantize.weight_only", **later}] if later is not None else [])
    result = cli("plan", tiny_recipe(tiny_bert, tmp_path, passes=passes))
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")


def test_tiny_bert_student_quantizes_to_int4_without_loss(cli, tiny_bert, tmp_path):
    """distill.tinybert, then this pass, then int4 on MatMulNBits in float32 arithmetic (accuracy_level 1): the
    quantized model computes what the exported float student does, to float rounding."""
    passes = [{"pass": "distill.tinybert", "student": {"layers": 2}, "epochs": 1, "batch_size": 16},
              {**QAT, "exclude": ["*token_type_embeddings*"]}, {"pass": "export.onnx"},
              {"pass": "quantize.weight_only", "block_size": 16, "kernel": "nbits", "accuracy_level": 1,
               "exclude_nodes": ["*token_type_embeddings*"]}]
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, tiny_recipe(tiny_bert, tmp_path, passes=passes), out)
    qat, wo = manifest["history"][2], manifest["history"][4]
    assert qat["details"]["rounding"]["linears"] == 2 * 6 and qat["details"]["layer_map_origin"] == "from distill.tinybert"
    assert qat["details"]["rounding"]["kept_float"] == ["model.embeddings.token_type_embeddings"]
    assert "MatMulNBits" in wo["details"]["quantized_ops"] and wo["details"]["parity_max_abs"] < 1e-5
