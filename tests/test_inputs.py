"""Inputs declared per input: several inputs, batch axes other than 0 (a recurrent state), inputs without a
batch axis (a sample rate), -1 and symbolic dims pinned by the recipe or `--shape`, external weight data,
already-quantized files, and messages that name the user's file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def state_model(path: Path, batch: object = "batch", external: bool = False) -> Path:
    """y[b, 8] = x[b, 16] @ W + sum over 2 of state[2, b, 8], times the scalar sample rate / 16000."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W")
    axes = numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")
    scale = numpy_helper.from_array(np.array(1 / 16000, dtype=np.float32), "scale")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("ReduceSum", ["state", "axes"], ["s"], keepdims=0),
        helper.make_node("Add", ["xw", "s"], ["pre"]),
        helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["srf", "scale"], ["k"]),
        helper.make_node("Mul", ["pre", "k"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "state",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, batch, 8]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])], [weight, axes, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                  size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def onnx_recipe(tmp_path: Path, model: Path, passes: list[dict] | None = None, **source: object) -> Path:
    recipe = {"schema_version": 1, "name": "state", "target": "cortex-a53",
              "model": {"source": "onnx", "path": str(model), **source},
              "passes": passes or [{"pass": "quantize.ptq", "scheme": "dynamic-per-channel"}]}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


SR = [{"name": "sr", "constant": 16000}]


def test_batch_axes_are_found_per_input_and_a_constant_feeds_the_sample_rate(cli, tmp_path: Path) -> None:
    model = state_model(tmp_path / "state.onnx")
    plan = cli("plan", onnx_recipe(tmp_path, model, inputs=SR), "--json")
    assert plan.code == 0, plan.err
    out = tmp_path / "bundle"
    result = cli("compile", onnx_recipe(tmp_path, model, inputs=SR), "-o", out, "--json")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    inputs = {i["name"]: i for i in manifest["model"]["inputs"]}
    assert inputs["x"]["shape"] == [1, 16] and inputs["x"]["batch_axis"] == 0
    assert inputs["state"]["shape"] == [2, 1, 8] and inputs["state"]["batch_axis"] == 1
    assert inputs["sr"]["shape"] == [] and inputs["sr"]["batch_axis"] is None and inputs["sr"]["constant"] == 16000
    quantize = manifest["history"][-1]["details"]
    assert quantize["parity_cosine"] > 0.99  # parity ran on generated inputs in each input's own layout
    with np.load(out / "golden.npz") as golden:
        assert golden["input_1"].shape == (8, 2, 1, 8) and np.all(golden["input_2"] == 16000)
    assert cli("verify", out).code == 0


def test_dims_nothing_pins_are_a_plan_error_naming_the_input(cli, tmp_path: Path) -> None:
    model = state_model(tmp_path / "state.onnx")
    graph = onnx.load(str(model))
    graph.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"  # x [batch, features]
    onnx.save(graph, str(model))
    result = cli("plan", onnx_recipe(tmp_path, model, inputs=SR), "--json")
    assert result.code == 2
    (error,) = result.json["errors"]
    assert error["where"] == "recipe.json: model.inputs" and "input 'x' has dimensions nothing pins: [1, features]" in error["message"]
    assert "--shape x=1x" in error["hint"]
    pinned = cli("plan", onnx_recipe(tmp_path, model, inputs=SR), "--shape", "x=1x16", "--json")
    assert pinned.code == 0, pinned.err


def test_minus_one_dims_are_pinned_by_shape_on_compile(cli, tmp_path: Path) -> None:
    model = state_model(tmp_path / "state.onnx", batch=-1)
    graph = onnx.load(str(model))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value == -1
    out = tmp_path / "b"
    result = cli("compile", onnx_recipe(tmp_path, model, inputs=SR), "-o", out, "--shape", "state=2x1x8")
    assert result.code == 0, result.err
    inputs = {i["name"]: i for i in json.loads((out / "manifest.json").read_text())["model"]["inputs"]}
    assert inputs["x"]["shape"] == [1, 16] and inputs["state"]["shape"] == [2, 1, 8]


def test_an_unknown_input_name_is_a_plan_error(cli, tmp_path: Path) -> None:
    model = state_model(tmp_path / "state.onnx")
    result = cli("plan", onnx_recipe(tmp_path, model, inputs=[*SR, {"name": "nope", "shape": [1]}]), "--json")
    assert result.code == 2 and "the model has no input 'nope' (its inputs: x, state, sr)" in result.json["errors"][0]["message"]


def test_external_weight_data_travels_with_the_model(cli, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    model = state_model(folder / "state.onnx", external=True)
    assert (folder / "weights.bin").is_file()
    out = tmp_path / "bundle"
    result = cli("compile", onnx_recipe(tmp_path, model, passes=[{"pass": "fuse.ort"}], inputs=SR), "-o", out)
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".onnx", ".bin", ".data")) == ["model.onnx"]
    assert cli("verify", out).code == 0


def test_an_already_quantized_file_is_not_quantized_again(cli, tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_model = state_model(tmp_path / "state.onnx")
    quantized = tmp_path / "state-int8.onnx"
    quantize_dynamic(str(float_model), str(quantized), weight_type=QuantType.QInt8)
    result = cli("compile", onnx_recipe(tmp_path, quantized, inputs=SR), "-o", tmp_path / "b", "--json")
    assert result.code == 2  # refused at plan time: the source file says it is quantized
    message = result.json["errors"][0]["message"]
    assert "already quantized in the source file" in message and "MatMulInteger" in message
    assert cli("compile", onnx_recipe(tmp_path, quantized, passes=[{"pass": "fuse.ort"}], inputs=SR), "-o", tmp_path / "c").code == 0


def test_a_broken_file_is_named_as_the_user_gave_it(cli, tmp_path: Path) -> None:
    model = state_model(tmp_path / "state.onnx")
    graph = onnx.load(str(model))
    graph.graph.node[0].input[1] = "missing_weight"
    onnx.save(graph, str(model))
    result = cli("compile", onnx_recipe(tmp_path, model, inputs=SR), "-o", tmp_path / "b", "--json")
    assert result.code == 2, result.err
    assert str(model) in json.dumps(result.json["errors"]) and "shrink-run-" not in json.dumps(result.json["errors"])


def test_a_torch_model_with_two_inputs_exports_both(cli, tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Two(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.a = nn.Linear(6, 4)\n        self.b = nn.Linear(3, 4)\n\n"
        "    def forward(self, x, y):\n        return self.a(x) + self.b(y)\n\n\n"
        "def two():\n    torch.manual_seed(0)\n    return Two()\n")
    recipe = {"schema_version": 1, "name": "two", "target": "cortex-a53",
              "model": {"source": "torch", "factory": "two.py:two",
                        "inputs": [{"name": "x", "shape": [1, 6]}, {"name": "y", "shape": [1, 3]}]},
              "passes": [{"pass": "export.onnx"}]}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    out = tmp_path / "b"
    result = cli("compile", path, "-o", out)
    assert result.code == 0, result.err
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["x", "y"]
    assert graph.input[1].type.tensor_type.shape.dim[0].dim_param  # the batch axis stays dynamic
    assert cli("verify", out).code == 0


@pytest.mark.parametrize("bad", [{"input_shape": [1, 6], "inputs": [{"name": "x", "shape": [1, 6]}]},
                                 {"inputs": [{"name": "x"}]}, {}])
def test_torch_inputs_are_declared_one_way(cli, tmp_path: Path, bad: dict) -> None:
    (tmp_path / "f.py").write_text("from torch import nn\n\n\ndef f():\n    return nn.Linear(6, 2)\n")
    recipe = {"schema_version": 1, "name": "f", "target": "cortex-a53",
              "model": {"source": "torch", "factory": "f.py:f", **bad}, "passes": [{"pass": "export.onnx"}]}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    result = cli("plan", path, "--json")
    assert result.code == 2 and result.json["errors"][0]["where"].startswith("recipe.json: model")


def test_an_untrained_source_model_stops_the_compile_unless_allowed(cli, make_recipe, tmp_path: Path) -> None:
    model = {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8]}  # random init, no weights
    result = cli("compile", make_recipe(model=model), "-o", tmp_path / "a", "--json")
    assert result.code == 2, result.err
    (error,) = result.json["errors"]
    assert error["where"] == "recipe.json: model" and "within 2% of chance" in error["message"]
    assert "allow_random_weights" in error["hint"] and not (tmp_path / "a").exists()
    assert cli("compile", make_recipe(model={**model, "allow_random_weights": True}), "-o", tmp_path / "b").code == 0


def installed_package(root: Path, name: str, models: dict[str, Path]) -> None:
    """A distribution `name` installed under `root` (a sys.path entry) that ships `models` at the given paths."""
    package = name.replace("-", "_")
    info = root / f"{package}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    records = [f"{info.name}/METADATA,,"]
    for inside, model in models.items():
        target = root / package / inside
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(model.read_bytes())
        records.append(f"{package}/{inside},,")
    (info / "RECORD").write_text("\n".join(records) + "\n")


def test_a_model_an_installed_package_ships_is_found_by_name(cli, tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    model = state_model(tmp_path / "state.onnx")
    installed_package(site, "ocr-models", {"models/det.onnx": model, "models/cls.onnx": model})
    monkeypatch.syspath_prepend(str(site))
    recipe = onnx_recipe(tmp_path, model, inputs=SR)
    raw = json.loads(recipe.read_text())

    def plan(**source: object) -> object:
        raw["model"] = {"source": "onnx", "inputs": SR, **source}
        recipe.write_text(json.dumps(raw))
        return cli("plan", recipe, "--json")

    two = plan(package="ocr-models")
    assert two.code == 2 and ("package 'ocr-models' ships 2 .onnx files; name one in 'path': ocr_models/models/cls.onnx, "
                              "ocr_models/models/det.onnx") in two.json["errors"][0]["message"]
    missing = plan(package="ocr-models", path="rec.onnx")
    assert missing.code == 2 and "ships no .onnx file 'rec.onnx'" in missing.json["errors"][0]["message"]
    absent = plan(package="no-such-dist-here")
    assert absent.code == 2 and "package 'no-such-dist-here' is not installed" in absent.json["errors"][0]["message"]
    assert plan(package="ocr-models", path="cls.onnx").code == 0
    assert cli("compile", recipe, "-o", tmp_path / "bundle").code == 0


def _source_cached(cli, recipe: Path, out: Path) -> bool:
    result = cli("compile", recipe, "-o", out)
    assert result.code == 0, result.err
    return json.loads((out / "manifest.json").read_text())["history"][0]["cached"]


def test_the_cache_keys_the_model_files_a_recipe_does_not_name(cli, tmp_path: Path, monkeypatch) -> None:
    """A packaged model and external weight data are hashed by content: changing either reruns the source."""
    site, folder = tmp_path / "site", tmp_path / "model"
    folder.mkdir()
    model = state_model(folder / "state.onnx", external=True)
    recipe = onnx_recipe(tmp_path, model, passes=[{"pass": "fuse.ort"}], inputs=SR)
    assert not _source_cached(cli, recipe, tmp_path / "a")
    assert _source_cached(cli, recipe, tmp_path / "b")
    weights = folder / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    assert not _source_cached(cli, recipe, tmp_path / "c")

    installed_package(site, "ocr-models", {"cls.onnx": state_model(tmp_path / "plain.onnx")})
    monkeypatch.syspath_prepend(str(site))
    raw = json.loads(recipe.read_text())
    raw["model"] = {"source": "onnx", "package": "ocr-models", "inputs": SR}
    recipe.write_text(json.dumps(raw))
    assert not _source_cached(cli, recipe, tmp_path / "d")
    assert _source_cached(cli, recipe, tmp_path / "e")
    state_model(site / "ocr_models" / "cls.onnx", batch=1)
    assert not _source_cached(cli, recipe, tmp_path / "f")


def test_token_ids_past_the_models_vocabulary_are_bad_input_naming_the_data(cli, tmp_path: Path) -> None:
    """An exported text model fed an .npz whose ids exceed its embedding table failed as a plugin error (exit 3)."""
    table = numpy_helper.from_array(np.zeros((10, 4), dtype=np.float32), "T")
    graph = helper.make_graph([helper.make_node("Gather", ["T", "ids"], ["y"])], "lookup",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4])], [table])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "lookup.onnx"))
    np.savez(tmp_path / "ids.npz", ids=np.full((8, 3), 50, np.int64))
    recipe = onnx_recipe(tmp_path, tmp_path / "lookup.onnx", passes=[{"pass": "fuse.ort"}])
    raw = json.loads(recipe.read_text())
    recipe.write_text(json.dumps({**raw, "data": {"source": "arrays", "path": str(tmp_path / "ids.npz")}}))
    result = cli("compile", recipe, "-o", tmp_path / "out", "--json")
    assert result.code == 2, result.err
    (error,) = result.json["errors"]
    assert error["where"].endswith(": data") and "rejects the data's samples" in error["message"]
    assert "idx=50" in error["message"] and not (tmp_path / "out").exists()
