"""quantize.ptq, quantize.fp16 and fuse.ort on tiny real ONNX models, through the real engine.

The models are built with `onnx.helper`: a random feature extractor (a small CNN, or a MatMul-only
MLP) with a ridge-regression classifier fitted on the digits training split, so the float model is
a real classifier (≈90% on 8x8 digits) and int8 parity is meaningful. No torch.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from shrink import Artifact
from shrink.api.context import Context
from shrink.engine.compile import load_plan
from shrink.host.registry import Registry
from shrink_sklearn.digits import digits_splits

OPSET = 17


def _features(nodes: list[Any], inits: list[Any], feature: str, dims: int, x: np.ndarray) -> np.ndarray:
    graph = helper.make_graph(nodes, "features", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info(feature, TensorProto.FLOAT, ["N", dims])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": np.ascontiguousarray(x)})[0]


def _classifier(nodes: list[Any], inits: list[Any], feature: str, dims: int, head: str, name: str) -> onnx.ModelProto:
    """Fit a ridge-regression head on the features and close the graph with it (Gemm or MatMul + Add)."""
    x, y = digits_splits(8)["train"]
    feats = _features(nodes, inits, feature, dims, x)
    ones = np.hstack([feats, np.ones((len(feats), 1), np.float32)])
    target = np.eye(10, dtype=np.float32)[y] * 2 - 1
    solution = np.linalg.solve(ones.T @ ones + 1e-1 * np.eye(ones.shape[1]), ones.T @ target).astype(np.float32)
    weight, bias = solution[:-1], solution[-1]
    inits = inits + [numpy_helper.from_array(weight, "head_w"), numpy_helper.from_array(bias, "head_b")]
    if head == "gemm":
        nodes = nodes + [helper.make_node("Gemm", [feature, "head_w", "head_b"], ["output"], name="head")]
    else:
        nodes = nodes + [helper.make_node("MatMul", [feature, "head_w"], ["logits"], name="head"),
                         helper.make_node("Add", ["logits", "head_b"], ["output"], name="head_bias")]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def conv_net() -> onnx.ModelProto:
    """Conv(1→16) → Relu → Conv(16→16) → Relu → Flatten → Gemm(1024→10): ~13k parameters."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((16, 1, 3, 3)) / 3).astype(np.float32)
    w2 = (rng.standard_normal((16, 16, 3, 3)) / 12).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(16, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(16, np.float32), "b2")]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["flat"], name="flatten"),
    ]
    return _classifier(nodes, inits, "flat", 16 * 64, "gemm", "conv_net")


def matmul_net() -> onnx.ModelProto:
    """Flatten → MatMul(64→256) → Add → Relu → MatMul(256→10) → Add: no Conv, no Gemm (transformer-like ops)."""
    rng = np.random.default_rng(1)
    w1 = (rng.standard_normal((64, 256)) / 4).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(256, np.float32), "b1")]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w1"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="fc1_bias"),
        helper.make_node("Relu", ["a1"], ["hidden"], name="relu1"),
    ]
    return _classifier(nodes, inits, "hidden", 256, "matmul", "matmul_net")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-models")
    paths = {}
    for name, build in (("conv", conv_net), ("matmul", matmul_net)):
        paths[name] = root / f"{name}.onnx"
        onnx.save(build(), str(paths[name]))
    return paths


def recipe(tmp_path: Path, model: Path, passes: list[dict[str, Any]], target: str = "cortex-a53",
           data: bool = True, name: str = "recipe.json") -> Path:
    raw: dict[str, Any] = {
        "schema_version": 1, "name": "onnx-passes", "target": target,
        "model": {"source": "onnx", "path": str(model), "input_shape": [1, 1, 8, 8]},
        "passes": passes,
    }
    if data:
        raw["data"] = {"source": "sklearn.digits", "image_size": 8}
    path = tmp_path / name
    path.write_text(json.dumps(raw, indent=2))
    return path


def compile_ok(cli: Any, path: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = cli("compile", path, "-o", out, "--json", *extra)
    assert result.code == 0, result.err
    return json.loads((out / "manifest.json").read_text())


def ops(path: Path) -> Counter[str]:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def step(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in manifest["history"] if s["name"] == name)


def test_float_models_are_real_classifiers(models):
    x, y = digits_splits(8)["eval"]
    for path in models.values():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert (sess.run(None, {"input": np.ascontiguousarray(x)})[0].argmax(1) == y).mean() > 0.85


def test_static_qdq_per_channel_on_a_conv_net(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize"}]), out)
    ptq = step(manifest, "quantize.ptq")
    details = ptq["details"]
    assert details["scheme"] == "static-qdq-per-channel"
    assert details["scheme_reason"].startswith("auto: target cortex-a53 prefers static-qdq-per-channel; 2 Conv nodes")
    assert details["engine"] == "ort" and details["calibration_inputs"] == "calibration[:200]"
    assert details["nodes_quantized"] >= 3 and "Conv×2" in details["quantized_ops"] and details["float_compute_ops"] == "none"
    counts = ops(out / "model.onnx")
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > 0
    source = manifest["history"][0]["metrics"]
    assert ptq["metrics"]["model_bytes"] < 0.4 * source["model_bytes"]
    assert details["bytes_after"] < details["bytes_before"]
    assert details["parity_top1_agreement"] >= 0.95
    assert abs(ptq["metrics"]["accuracy"] - source["accuracy"]) <= 0.02
    assert "static-qdq-per-channel" in (out / "report.md").read_text()  # the choice is visible in the report


def test_auto_picks_dynamic_per_channel_for_a_matmul_graph(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["matmul"], [{"pass": "quantize.ptq"}]), out)
    details = step(manifest, "quantize.ptq")["details"]
    assert details["scheme"] == "dynamic-per-channel"
    assert "transformer-like" in details["scheme_reason"] and "onnxruntime" in details["scheme_reason"]
    counts = ops(out / "model.onnx")
    assert counts["DynamicQuantizeLinear"] > 0 and counts["MatMulInteger"] == 2
    assert "QuantizeLinear" not in counts
    assert details["parity_top1_agreement"] >= 0.95


def test_explicit_per_tensor_with_exclusions_and_entropy(cli, models, tmp_path):
    out = tmp_path / "bundle"
    passes = [{"pass": "quantize", "scheme": "static-qdq-per-tensor", "calibration_method": "entropy",
               "calibration_samples": 50, "exclude_ops": ["Gemm"]}]
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], passes), out)
    details = step(manifest, "quantize.ptq")["details"]
    assert details["scheme"] == "static-qdq-per-tensor" and details["scheme_reason"] == "set in the recipe"
    assert details["per_channel"] is False and details["calibration_inputs"] == "calibration[:50]"
    assert details["float_compute_ops"] == "Gemm×1"
    model = onnx.load(str(out / "model.onnx"))
    weight_scales = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("w2") and "scale" in i.name]
    assert weight_scales and all(s.size == 1 for s in weight_scales)  # one scale per tensor


def test_exclude_nodes_by_pattern_keeps_them_float(cli, models, tmp_path):
    names = [n.name for n in onnx.load(str(models["conv"])).graph.node if n.op_type == "Conv"]
    first = names[0]
    out = tmp_path / "bundle"
    pattern = f"{first[:-1]}[{first[-1]}]"  # a glob (character class) that matches the first Conv only
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize", "exclude_nodes": [pattern]}]), out)
    details = step(manifest, "quantize.ptq")["details"]
    assert details["kept_float"] == first and details["float_compute_ops"] == "Conv×1"

    missing = recipe(tmp_path, models["conv"], [{"pass": "quantize", "exclude_nodes": ["no-such-node*"]}], name="bad.json")
    result = cli("compile", missing, "-o", tmp_path / "bad")
    assert result.code == 5 and "exclude_nodes: no node named or matching 'no-such-node*'" in result.err


@pytest.mark.slow
def test_nncf_engine(cli, models, tmp_path):
    pytest.importorskip("nncf")
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize", "engine": "nncf"}]), out)
    details = step(manifest, "quantize.ptq")["details"]
    assert details["engine"] == "nncf" and details["nncf_subset_size"] == 200
    assert ops(out / "model.onnx")["DequantizeLinear"] > 0


def test_fp16_refused_at_plan_time_for_cortex_a53(cli, models, tmp_path):
    path = recipe(tmp_path, models["conv"], [{"pass": "fuse"}, {"pass": "quantize.fp16"}])
    result = cli("plan", path, "--json")
    assert result.code == 2
    (error,) = result.json["errors"]
    assert error["where"] == "recipe.json: passes[1]"
    assert "cortex-a53" in error["message"] and "float16" in error["message"]
    assert cli("plan", path, "--target", "x86-64-avx2").code == 0  # its dtypes list float16


def test_fp16_halves_the_model_on_a_float16_target(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize.fp16"}], target="x86-64-avx2"), out)
    details = step(manifest, "quantize.fp16")["details"]
    assert 0.45 < details["size_ratio"] < 0.6 and details["parity_top1_agreement"] >= 0.98
    model = onnx.load(str(out / "model.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # keep_io_types
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)


def test_fuse_extended_writes_com_microsoft_fused_ops(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "fuse"}]), out)
    details = step(manifest, "fuse.ort")["details"]
    assert details["level"] == "extended" and details["nodes_after"] < details["nodes_before"]
    assert "com.microsoft:FusedConv×2" in details["fused_ops"]
    model = onnx.load(str(out / "model.onnx"))
    assert {n.domain for n in model.graph.node} == {"", "com.microsoft"}
    assert {i.domain for i in model.opset_import} <= {"", "com.microsoft"}  # ORT's unused imports pruned
    assert details["parity_top1_agreement"] == 1.0


def test_quantize_then_fuse_gives_qlinear_ops(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize"}, {"pass": "fuse"}]), out)
    details = step(manifest, "fuse.ort")["details"]
    counts = ops(out / "model.onnx")
    assert counts["QLinearConv"] == 2 and counts["QGemm"] == 1
    assert details["nodes_after"] < details["nodes_before"]


@pytest.mark.parametrize("level", ["all", "layout"])
def test_non_portable_levels_rejected_at_plan_time(cli, models, tmp_path, level):
    result = cli("plan", recipe(tmp_path, models["conv"], [{"pass": "fuse", "graph_optimization_level": level}]), "--json")
    assert result.code == 2
    (error,) = result.json["errors"]
    assert error["where"] == "recipe.json: passes[0]"
    assert "hardware" in error["message"] or "not portable" in error["message"]
    assert "'extended'" in error["message"]


def test_plan_time_option_and_context_checks(cli, models, tmp_path):
    bad = [
        {"pass": "quantize", "engine": "nncf", "scheme": "dynamic-per-channel"},
        {"pass": "quantize", "scheme": "dynamic-per-tensor", "calibration_method": "entropy"},
    ]
    result = cli("plan", recipe(tmp_path, models["conv"], bad), "--json")
    assert result.code == 2
    assert [e["where"] for e in result.json["errors"]] == ["recipe.json: passes[0]", "recipe.json: passes[1]"]

    no_data = recipe(tmp_path, models["conv"], [{"pass": "quantize"}], data=False, name="nodata.json")
    result = cli("plan", no_data, "--json")
    assert result.code == 2 and "calibration data" in result.json["errors"][0]["message"]
    dynamic = recipe(tmp_path, models["conv"], [{"pass": "quantize", "scheme": "dynamic-per-channel"}], data=False, name="dyn.json")
    assert cli("plan", dynamic).code == 0

    typo = recipe(tmp_path, models["conv"], [{"pass": "quantize", "exclude_ops": ["Convv"]}], name="typo.json")
    result = cli("plan", typo, "--json")
    assert result.code == 2 and "did you mean 'Conv'" in result.json["errors"][0]["message"]


def _microcontroller_profile(tmp_path: Path) -> Path:
    profile = json.loads((Path(__file__).resolve().parents[1] / "targets" / "cortex-a53.json").read_text())
    profile.update(name="no-contrib-ops", aliases=[], opset={"ai.onnx": {"min": 7, "max": 21}})
    path = tmp_path / "no-contrib-ops.json"
    path.write_text(json.dumps(profile))
    return path


def test_fuse_falls_back_to_basic_without_com_microsoft(cli, models, tmp_path):
    target = _microcontroller_profile(tmp_path)
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "fuse"}]), out, "--target", str(target))
    details = step(manifest, "fuse.ort")["details"]
    assert details["level_requested"] == "extended" and details["level"] == "basic"
    assert "com.microsoft" in details["fallback"]
    assert {n.domain for n in onnx.load(str(out / "model.onnx")).graph.node} == {""}

    strict = recipe(tmp_path, models["conv"], [{"pass": "fuse", "on_unsupported": "fail"}], name="strict.json")
    result = cli("compile", strict, "-o", tmp_path / "strict", "--target", str(target), "--json")
    assert result.code == 5
    assert "passes[0]" in result.json["errors"][0]["where"] and "com.microsoft" in result.json["errors"][0]["message"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("passes", [[{"pass": "quantize"}], [{"pass": "fuse"}], [{"pass": "quantize.fp16"}]])
def test_passes_write_new_self_contained_files(models, tmp_path, passes):
    """Run the pass directly on a model saved with external data: the input stays untouched, the output
    is a new file in the workdir that holds all its weights."""
    external = tmp_path / "external.onnx"
    onnx.save(onnx.load(str(models["conv"])), str(external), save_as_external_data=True, location="external.onnx.data",
              size_threshold=0)
    before = {p.name: _sha256(p) for p in tmp_path.iterdir() if p.is_file()}
    plan = load_plan(recipe(tmp_path, external, passes, target="x86-64-avx2"), Registry.load())
    workdir = tmp_path / "work"
    workdir.mkdir()
    ctx = Context(recipe=plan.recipe, target=plan.target, data=None, workdir=workdir)
    assert plan.data is not None
    ctx.data = plan.data.load(ctx)
    artifact = Artifact(str(external), "onnx", meta={"inputs": [{"name": "input", "shape": [None, 1, 8, 8], "dtype": "float32"}]})
    result = plan.steps[0].instance.run(artifact, ctx)
    out = Path(result.model)
    assert out.parent == workdir and out.is_file() and out != external
    proto = onnx.load(str(out), load_external_data=False)
    assert not any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert {p.name: _sha256(p) for p in tmp_path.iterdir() if p.is_file() and p.name in before} == before
    assert result.details and result.format == "onnx"


def test_attention_with_gemm_projections_is_a_transformer():
    """MobileBERT-style exports project with Gemm: attention (MatMul + Softmax) still picks the transformer scheme."""
    from shrink_onnx.quantize import graph_kind

    assert graph_kind(Counter({"Gemm": 40, "MatMul": 12, "Softmax": 6, "Gather": 2}))[0] == "transformer"
    assert graph_kind(Counter({"Gemm": 3}))[0] == "other"
    assert graph_kind(Counter({"Conv": 2, "MatMul": 1, "Softmax": 1}))[0] == "conv"


def test_static_per_channel_upgrades_an_old_opset_and_histograms_stream(cli, models, tmp_path):
    model = onnx.load(str(models["conv"]))
    model.opset_import[0].version = 11  # Conv, Relu, Flatten and Gemm mean the same at 11
    onnx.checker.check_model(model, full_check=True)
    old = tmp_path / "opset11.onnx"
    onnx.save(model, str(old))
    out = tmp_path / "bundle"
    passes = [{"pass": "quantize", "scheme": "static-qdq-per-channel", "calibration_method": "percentile",
               "calibration_samples": 40}]
    manifest = compile_ok(cli, recipe(tmp_path, old, passes), out)
    details = step(manifest, "quantize.ptq")["details"]
    assert details["opset_converted"].startswith("11 → 13")
    assert details["calibration_method"] == "percentile" and details["calibration_chunk"] < 40  # streamed, not all at once
    assert details["parity_top1_agreement"] >= 0.95
    model = onnx.load(str(out / "model.onnx"))
    assert next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) >= 13
    assert onnx.load(str(old)).opset_import[0].version == 11  # the user's file is left alone


def test_ops_names_what_to_quantize_and_the_rest_stays_float(cli, models, tmp_path):
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, recipe(tmp_path, models["conv"], [{"pass": "quantize", "ops": ["Conv"]}]), out)
    details = step(manifest, "quantize.ptq")["details"]
    assert "Conv×2" in details["quantized_ops"] and details["float_compute_ops"] == "Gemm×1"

    for option, message in (({"ops": ["Conv"], "exclude_ops": ["Conv"]}, "Conv both in ops and in exclude_ops"),
                            ({"ops": ["Convv"]}, "ops: 'Convv' is not an ONNX operator; did you mean 'Conv'?")):
        bad = recipe(tmp_path, models["conv"], [{"pass": "quantize", **option}], name="bad.json")
        result = cli("plan", bad)
        assert result.code == 2 and message in result.err, result.err


def test_per_position_class_outputs_are_compared_as_label_sequences():
    from shrink_common.parity import sequence_agreement

    def onehot(rows: list[list[int]]) -> np.ndarray:
        probs = np.full((len(rows), len(rows[0]), 4), 0.1)
        for i, row in enumerate(rows):
            probs[i, np.arange(len(row)), row] = 0.7
        return probs

    reference = onehot([[0, 1, 1, 0, 2], [3, 0, 3, 3, 0], [2, 2, 0, 0, 1]])
    # runs and blanks placed differently, same labels: [1, 2], [3, 3], [2, 1]
    moved = onehot([[1, 1, 0, 2, 2], [3, 3, 0, 3, 0], [0, 2, 0, 1, 1]])
    misread = onehot([[0, 1, 1, 0, 3], [3, 0, 3, 3, 0], [2, 2, 0, 0, 1]])
    assert sequence_agreement(reference, moved)["sequence_agreement"] == 1.0
    assert sequence_agreement(reference, misread) == {"sequence_agreement": pytest.approx(2 / 3),
                                                       "position_agreement": pytest.approx(14 / 15)}
    assert sequence_agreement(np.log(reference), np.log(reference)) is None  # not probabilities: cosine and |Δ| only
    assert sequence_agreement(reference[:, 0], reference[:, 0]) is None  # [N, C] is the classifier's top-1, not this


def conv_lstm_model(path: Path) -> Path:
    """x[b, 8, 16] -> Conv1d(8->8, k=1) -> time-major -> LSTM(hidden 16) -> Y: a text reader's shape, in small."""
    rng = np.random.default_rng(0)
    tensors = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
               for name, shape in (("cw", (8, 8, 1)), ("W", (1, 64, 8)), ("R", (1, 64, 16)), ("B", (1, 128)))]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[2, 0, 1]),
             helper.make_node("LSTM", ["t", "W", "R", "B"], ["y"], hidden_size=16)]
    graph = helper.make_graph(nodes, "conv_lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 8, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 1, "b", 16])], tensors)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_static_scheme_quantizes_the_lstm_too(cli, tmp_path: Path) -> None:
    """ORT's QDQ format has no int8 LSTM: ddddocr's Conv+LSTM reader kept 15% of its MACs float; the LSTM is now
    quantized dynamically after the static pass (DynamicQuantizeLSTM), where the runtime is ONNX Runtime."""
    model = conv_lstm_model(tmp_path / "reader.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(1).standard_normal((24, 8, 16)).astype(np.float32))
    recipe = {"schema_version": 1, "name": "reader", "target": "cortex-a53",
              "model": {"source": "onnx", "path": str(model), "inputs": [{"name": "x", "shape": [1, 8, 16]}]},
              "data": {"source": "arrays", "path": str(tmp_path / "x.npz")},
              "passes": [{"pass": "quantize.ptq", "scheme": "static-qdq-per-channel"}]}
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    result = cli("compile", tmp_path / "r.json", "-o", tmp_path / "out")
    assert result.code == 0, result.err
    details = json.loads((tmp_path / "out" / "manifest.json").read_text())["history"][-1]["details"]
    assert "DynamicQuantizeLSTM×1" in details["quantized_ops"] and "LSTM" not in details["float_compute_ops"]
    assert details["parity_cosine"] > 0.98
