"""prune.magnitude, quantize.qat and export.ort on the tiny CNN and 8x8 digits, through the real CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, numpy_helper  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conftest `tiny` CNN trained for 4 epochs on the digits train split (a converged-enough fp32 model)."""
    import torch.nn.functional as F

    from shrink.testing import TINY_FACTORY
    from shrink_sklearn.digits import digits_splits

    namespace: dict[str, Any] = {}
    exec(compile(TINY_FACTORY, "tiny.py", "exec"), namespace)
    model = namespace["tiny"]()
    x, y = (torch.from_numpy(np.array(a)) for a in digits_splits(8)["train"])
    y = y.long()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(model.eval().state_dict(), path)
    return path


def trained(make_recipe: Any, weights: Path, passes: list[dict[str, Any]], **extra: Any) -> Path:
    model = {"source": "torch", "factory": "tiny.py:tiny", "weights": str(weights), "input_shape": [1, 1, 8, 8]}
    return make_recipe(model=model, passes=passes, **extra)


def compile_ok(cli: Any, recipe: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = cli("compile", recipe, "-o", out, "--json", *extra)
    assert result.code == 0, result.err
    return json.loads((out / "manifest.json").read_text())


def step(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in manifest["history"] if s["name"] == name)


def eval_split() -> tuple[np.ndarray, np.ndarray]:
    from shrink_sklearn.digits import digits_splits

    x, y = digits_splits(8)["eval"]
    return np.ascontiguousarray(x, dtype=np.float32), np.asarray(y)


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# plan time: options, contracts, targets ------------------------------------------------------------

EXPORT = {"pass": "export.onnx"}


@pytest.mark.parametrize(("passes", "index", "fragment"), [
    ([{"pass": "prune.magnitude", "sparsity": 1.0}, EXPORT], 0, "passes[0].sparsity: 1.0 is greater than the maximum of 0.99"),
    ([{"pass": "prune.magnitude", "sparsity": 0}, EXPORT], 0, "passes[0].sparsity"),
    ([{"pass": "prune.magnitude", "layers": []}, EXPORT], 0, "passes[0].layers"),
    ([{"pass": "prune.magnitude", "layers": ["conv", "lstm"]}, EXPORT], 0, "passes[0].layers[1]"),
    ([{"pass": "prune.magnitude", "finetune_epochs": 0, "schedule": "cubic"}, EXPORT], 0, "needs finetune_epochs > 0"),
    ([{"pass": "prune.magnitude", "schedule": "oneshot", "ramp": 0.5}, EXPORT], 0, "ramp applies only to a gradual schedule"),
    ([{"pass": "prune.magnitude", "finetune_kd": False, "temperature": 4}, EXPORT], 0,
     "temperature applies only to a KD fine-tune"),
    ([{"pass": "quantize.qat", "epochs": 0}], 0, "passes[0].epochs"),
    ([{"pass": "quantize.qat", "kd": False, "alpha": 0.3}], 0, "alpha applies only with kd: true"),
    ([{"pass": "quantize.qat", "opset": 11}], 0, "passes[0].opset"),
    ([EXPORT, {"pass": "export.ort"}, {"pass": "fuse.ort"}], 1, "export.ort must be the last pass"),
    ([EXPORT, {"pass": "export.ort", "target_platform": "amd64", "optimization_level": "all"}], 1, "NCHWc"),
])
def test_bad_options_fail_at_plan_time(cli, make_recipe, passes, index, fragment):
    result = cli("plan", make_recipe(passes=passes))
    assert result.code == 2, result.err
    assert f"recipe.json: passes[{index}]" in result.err and fragment in result.err, result.err
    assert "Traceback" not in result.err


def test_format_contracts(cli, make_recipe):
    chain = [{"pass": "prune.magnitude"}, {"pass": "quantize.qat"}, {"pass": "export.ort"}]
    result = cli("plan", make_recipe(passes=chain), "--json")
    assert result.code == 0, result.err
    steps = result.json["plan"]["passes"]
    assert [(s["pass"], s["consumes"], s["produces"]) for s in steps] == [
        ("prune.magnitude", "torch", "torch"), ("quantize.qat", "torch", "onnx"), ("export.ort", "onnx", "onnx")]
    assert steps[0]["options"]["sparsity"] == 0.5 and steps[1]["options"]["epochs"] == 2

    wrong = {
        "onnx-into-magnitude": ([{"pass": "export.onnx"}, {"pass": "prune.magnitude"}],
                                "passes[1].pass: prune.magnitude consumes torch but receives onnx here"),
        "onnx-into-qat": ([{"pass": "quantize.qat"}, {"pass": "quantize.qat"}],
                          "passes[1].pass: quantize.qat consumes torch but receives onnx here"),
        "torch-into-ort": ([{"pass": "export.ort"}], "passes[0].pass: export.ort consumes onnx but receives torch here"),
    }
    for name, (passes, fragment) in wrong.items():
        result = cli("plan", make_recipe(f"{name}.json", passes=passes))
        assert result.code == 2 and fragment in result.err, (name, result.err)


@pytest.mark.parametrize("passes", [[{"pass": "prune.magnitude"}, EXPORT], [{"pass": "quantize.qat"}]])
def test_training_passes_need_data(cli, make_recipe, passes):
    result = cli("plan", make_recipe(data=None, passes=passes), "--json")
    assert result.code == 2
    messages = [e["message"] for e in result.json["errors"] if e["where"] == "recipe.json: passes[0]"]
    assert any("needs data" in m for m in messages), result.json["errors"]


def test_export_ort_needs_a_target_that_loads_ort(cli, make_recipe):
    recipe = make_recipe(passes=[{"pass": "export.onnx"}, {"pass": "export.ort"}])
    assert cli("plan", recipe).code == 0  # cortex-a53: runtime.formats [onnx, ort]
    result = cli("plan", recipe, "--target", "cortex-m7", "--json")
    assert result.code == 2
    errors = [e for e in result.json["errors"] if e["where"] == "recipe.json: passes[1]"]
    assert errors and "runtime.formats: tflite" in errors[0]["message"] and "'ort'" in errors[0]["message"]


# prune.magnitude -------------------------------------------------------------------------------------

def test_prune_magnitude_gradual_reaches_sparsity_and_reports_storage(cli, make_recipe, weights, tmp_path):
    passes = [{"pass": "prune.magnitude", "sparsity": 0.7, "finetune_epochs": 1, "prune_steps": 8}, {"pass": "export.onnx"}]
    manifest = compile_ok(cli, trained(make_recipe, weights, passes), tmp_path / "bundle")
    pruned = step(manifest, "prune.magnitude")
    d = pruned["details"]
    assert abs(d["sparsity"] - 0.7) < 0.002 and d["schedule"] == "cubic" and d["scope"] == "global"
    assert d["mask_updates"] == 8 and d["pruned_layers"] == 2 and d["rebuild"] == "ok"  # plain state_dict
    assert d["nonzero_params"] < 0.4 * d["params"]
    assert d["weights_zlib_bytes_after"] < 0.6 * d["weights_zlib_bytes_before"] and d["zlib_saving"] > 0.4
    assert d["weights_csr_bytes"] < d["weights_dense_bytes"] and d["csr_saving"] > 0.3
    assert "zlib" in d["storage_encoding"] and "CSR" in d["storage_encoding"]
    source = manifest["history"][0]["metrics"]["accuracy"]
    assert source > 0.9 and pruned["metrics"]["accuracy"] >= source - 0.08

    model = onnx.load(str(tmp_path / "bundle" / "model.onnx"))  # the zeros survive export (BN folded, onnxsim)
    weights_2d = [numpy_helper.to_array(i) for i in model.graph.initializer if len(i.dims) >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights_2d) / sum(w.size for w in weights_2d)
    assert abs(zeros - 0.7) < 0.01
    assert "sparsity" in (tmp_path / "bundle" / "report.md").read_text()


def test_prune_magnitude_per_layer_oneshot_then_ort(cli, make_recipe, weights, tmp_path):
    """Per-layer one-shot pruning (no training), exported and converted to ORT format: the bundle carries model.ort."""
    passes = [{"pass": "prune.magnitude", "sparsity": 0.5, "scope": "layer", "finetune_epochs": 0},
              {"pass": "export.onnx"}, {"pass": "export.ort"}]
    out = tmp_path / "bundle"
    manifest = compile_ok(cli, trained(make_recipe, weights, passes), out)
    d = step(manifest, "prune.magnitude")["details"]
    assert d["schedule"] == "oneshot" and d["mask_updates"] == 1 and "accuracy_after_prune" not in d
    assert d["layer_sparsity"] == "0: 0.500, 4: 0.500"

    ort_step = step(manifest, "export.ort")["details"]
    assert ort_step["optimization_style"] == "fixed" and ort_step["target_platform"] == "arm"
    assert ort_step["optimization_level"] == "all" and ort_step["ort_parity_max_abs"] <= 1e-4
    assert ort_step["ort_parity_inputs"] == "eval[:64]" and ort_step["ort_parity_top1_agreement"] == 1.0
    assert {"model.ort", "model.required_operators.config"} <= set(manifest["files"])
    assert (out / "model.ort").read_bytes()[4:8] == b"ORTM"
    x, _ = eval_split()
    np.testing.assert_allclose(run(out / "model.ort", x), run(out / "model.onnx", x), atol=1e-5)
    assert cli("verify", out).code == 0  # model.ort is hashed in the manifest like every other file


# quantize.qat (+ export.ort on the int8 graph) -------------------------------------------------------

@pytest.mark.slow
def test_quantize_qat_int8_qdq_close_to_fp32_and_ort_format(cli, make_recipe, weights, tmp_path):
    pytest.importorskip("nncf")
    out = tmp_path / "bundle"
    passes = [{"pass": "quantize.qat", "epochs": 1, "calibration_samples": 100}, {"pass": "export.ort"}]
    manifest = compile_ok(cli, trained(make_recipe, weights, passes), out)
    qat = step(manifest, "quantize.qat")
    d = qat["details"]
    assert d["format"] == "QDQ" and d["per_channel"] is True and d["batchnorm_folded"] == 1
    assert d["calibration_inputs"] == "calibration[:100]" and d["parity_top1_agreement"] >= 0.98

    model = onnx.load(str(out / "model.onnx"))
    counts = Counter(n.op_type for n in model.graph.node)
    assert counts["QuantizeLinear"] >= 2 and counts["DequantizeLinear"] >= 4 and "FakeQuantize" not in counts
    int8 = {i.name for i in model.graph.initializer if i.data_type == TensorProto.INT8 and len(i.dims) >= 2}
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        dq = producers[node.input[1]]  # every weight is an int8 initializer behind a DequantizeLinear
        assert dq.op_type == "DequantizeLinear" and dq.input[0] in int8
    assert not [i for i in model.graph.initializer if i.data_type == TensorProto.FLOAT and len(i.dims) >= 2]
    assert d["int8_weight_tensors"] == len(int8) == 2 and d["weight_quantizers_left"] == 0
    assert manifest["analysis"]["weights_by_dtype"]["int8"]["params"] > 2000

    x, y = eval_split()
    accuracy = float((run(out / "model.onnx", x).argmax(1) == y).mean())
    fp32 = manifest["history"][0]["metrics"]["accuracy"]
    assert accuracy == pytest.approx(qat["metrics"]["accuracy"], abs=1e-6)
    assert accuracy >= fp32 - 0.03, (accuracy, fp32)
    assert qat["metrics"]["model_bytes"] < 0.5 * d["bytes_exported"]  # int8 weights on disk, not fp32

    ort_step = step(manifest, "export.ort")["details"]
    assert ort_step["ort_parity_max_abs"] <= 1e-4 and "QLinearConv" in ort_step["ort_operators"]
    np.testing.assert_allclose(run(out / "model.ort", x), run(out / "model.onnx", x), atol=1e-4)
