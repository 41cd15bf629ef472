"""Gates that say what they measured: loadable formats, labelled storage and RAM figures, the report's
comparisons, bundle shapes for `inspect`/`verify`, and parity at any magnitude (issue: gates fail closed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def bundle(cli, make_recipe, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    result = cli("compile", make_recipe(passes=[{"pass": "export.onnx"}, {"pass": "quantize.ptq"}]), "-o", out)
    assert result.code == 0, result.err
    return out


def test_a_format_the_target_cannot_load_is_a_plan_error_naming_what_would_work(cli, make_recipe) -> None:
    result = cli("plan", make_recipe(), "--target", "cortex-m4", "--json")
    assert result.code == 2
    (error,) = [e for e in result.json["errors"] if e["where"] == "recipe.json: passes"]
    assert "ends in an onnx model, which cortex-m4's runtime tflite-micro cannot load" in error["message"]
    assert "runtime.formats: tflite" in error["message"]
    assert "no installed pass produces tflite" in error["hint"]


def test_verify_of_an_onnx_bundle_on_a_tflite_target_fails_ops(cli, bundle: Path) -> None:
    result = cli("verify", bundle, "--target", "cortex-m7", "--json")
    assert result.code == 4
    ops = next(c for c in result.json["checks"] if c["name"] == "ops")
    assert not ops["ok"] and "tflite-micro on cortex-m7 loads tflite models, not onnx (model.onnx)" in ops["cause"]


def test_storage_and_ram_say_what_the_runtime_allowance_adds(cli, bundle: Path) -> None:
    checks = {c["name"]: c for c in cli("verify", bundle, "--json").json["checks"]}
    model = (bundle / "model.onnx").stat().st_size
    storage, ram = checks["storage"], checks["ram"]
    assert storage["ok"] and storage["value"] == model + 16 * 1024 * 1024
    assert re.search(r"^model file [\d.]+ KiB \+ onnxruntime allowance 16\.0 MiB of cortex-a53 storage 64\.0 MiB$",
                     storage["cause"]), storage["cause"]
    assert ram["ok"] and "onnxruntime allowance 32.0 MiB" in ram["cause"] and "of cortex-a53 ram" in ram["cause"]


def test_the_result_card_compares_with_the_source_and_the_previous_step(bundle: Path) -> None:
    html = re.sub(r"<[^>]+>", " ", (bundle / "report.html").read_text())
    card = html[html.index("Result"):html.index("Budgets and constraints")]
    assert "than the source model" in card  # weights and parameters: the torch source has them
    assert "than passes[0] export.onnx" in card  # the model file: the source has none, so the first file is named
    assert "than the previous step" in card


def test_operator_lists_show_dtypes(bundle: Path) -> None:
    line = next(l for l in (bundle / "report.md").read_text().splitlines() if l.startswith("- operators:"))
    assert re.search(r"DequantizeLinear \[[a-z0-9, ]+\] x\d", line) or re.search(r"QLinear\w+ \[[a-z0-9, ]+\] x\d", line), line


def test_inspect_and_verify_of_a_bundles_own_model_take_its_shapes_from_the_manifest(cli, bundle: Path) -> None:
    inspected = cli("inspect", bundle / "model.onnx", "--json")
    assert inspected.code == 0, inspected.err
    assert inspected.json["macs"] > 0
    verified = cli("verify", bundle / "model.onnx", "--target", "cortex-a53", "--json")
    assert verified.code == 0, verified.err


def test_parity_cosine_is_right_at_any_magnitude() -> None:
    from shrink_common.parity import closeness

    a = np.array([[3e-24, -1e-24, 2e-24]])
    assert closeness(a, a)["cosine"] == pytest.approx(1.0)
    assert closeness(a, a + 8e-24 * np.array([[0, 0, 1e-6]]))["cosine"] == pytest.approx(1.0)
    assert closeness(a, -a)["cosine"] == pytest.approx(-1.0)
    zero = np.zeros((1, 3))
    assert closeness(zero, zero)["cosine"] == 1.0 and closeness(zero, a)["cosine"] == 0.0


def test_the_manifest_records_the_shapes_it_pins(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["inputs"][0]["shape"] == [1, 1, 8, 8]


def loop_model(path: Path) -> Path:
    """y = x @ W applied n times, n an input: the analysis cannot know the trip count (incomplete MACs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("MatMul", ["acc_in", "W"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)], "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]), helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_incomplete_figure_cannot_verify_and_fails_unless_accepted(cli, tmp_path: Path) -> None:
    model = loop_model(tmp_path / "loop.onnx")
    closed = cli("verify", model, "--target", "cortex-a53", "--json")
    assert closed.code == 4
    checks = {c["name"]: c for c in closed.json["checks"]}
    for name in ("latency", "ram"):
        assert not checks[name]["ok"] and checks[name]["value"] is None
        assert checks[name]["cause"].startswith("cannot verify: the analysis is incomplete (") and "trip count" in checks[name]["cause"]
    assert checks["storage"]["ok"] and checks["ops"]["ok"]  # figures that do not depend on the analysis
    accepted = cli("verify", model, "--target", "cortex-a53", "--allow-incomplete", "--json")
    assert accepted.code == 0, accepted.out
    latency = next(c for c in accepted.json["checks"] if c["name"] == "latency")
    assert latency["ok"] and latency["cause"].startswith("accepted as a lower bound: ") and latency["value"] > 0
    only_latency = cli("verify", model, "--target", "cortex-a53", "--allow-incomplete", "latency", "--json")
    assert only_latency.code == 4 and not next(c for c in only_latency.json["checks"] if c["name"] == "ram")["ok"]
    unknown = cli("verify", model, "--target", "cortex-a53", "--allow-incomplete", "storage", "--json")
    assert unknown.code == 2 and unknown.json["errors"][0]["where"] == "--allow-incomplete"
    text = cli("verify", model, "--target", "cortex-a53")
    assert "note: incomplete: " in text.out and "trip count" in text.out  # the reasons in the text output too


def test_a_recipe_can_accept_an_incomplete_figure_and_the_report_says_so(cli, tmp_path: Path) -> None:
    model = loop_model(tmp_path / "loop.onnx")

    def recipe(budget: dict) -> Path:
        path = tmp_path / "recipe.json"
        path.write_text(json.dumps({"schema_version": 1, "name": "loop", "target": "cortex-a53", "budget": budget,
                                    "model": {"source": "onnx", "path": str(model), "inputs": [{"name": "n", "constant": 3}]},
                                    "passes": [{"pass": "fuse.ort"}]}))
        return path

    failed = cli("compile", recipe({}), "-o", tmp_path / "a")
    assert failed.code == 4 and "cannot verify" in failed.out
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["verdict"] == "fail"
    passed = cli("compile", recipe({"allow_incomplete": ["latency", "ram"]}), "-o", tmp_path / "b")
    assert passed.code == 0, passed.out
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["accepted_incomplete"] == ["ram", "latency"]
    report = (tmp_path / "b" / "report.md").read_text()
    assert "## Accepted incomplete figures" in report and "- incomplete: " in report


def test_latency_runs_at_the_rate_of_the_dtype_the_macs_run_in(tmp_path: Path) -> None:
    """Mostly int8 parameters (a big int8 table a Gather reads) but every MAC in a float MatMul: the float rate."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from shrink.api.checks import Subject
    from shrink.checks.estimates import latency_estimate
    from shrink.host.registry import Registry

    table = numpy_helper.from_array(np.ones((4096, 16), dtype=np.int8), "table")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale")
    weight = numpy_helper.from_array(np.ones((16, 64), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["table", "scale"], ["deq"]), helper.make_node("Gather", ["deq", "ids"], ["rows"]),
         helper.make_node("MatMul", ["rows", "W"], ["y"])], "mixed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 64])], [table, scale, weight])
    path = tmp_path / "mixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    target = Registry.load().catalog().resolve("cortex-a53")
    estimate = latency_estimate(Subject(path, target))
    assert estimate is not None and estimate.split() == "float32"  # 65,536 int8 params, 1,024 float: MACs decide
    assert [row[0] for row in estimate.macs] == ["float32"]
