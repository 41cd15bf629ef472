"""Malformed recipes: one clear line per problem with file and JSON path, exit 2, no traceback."""

from __future__ import annotations

import json

import pytest


def _assert_clean_error(result, *fragments: str) -> None:
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def test_valid_recipe_plans(cli, make_recipe):
    result = cli("plan", make_recipe())
    assert result.code == 0, result.err
    assert "export.onnx" in result.out
    assert "plan ok" in result.out


def test_unknown_pass_with_did_you_mean(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export.onnnx"}]))
    _assert_clean_error(result, "recipe.json: passes[0].pass: unknown pass 'export.onnnx'", "did you mean 'export.onnx'")


def test_bad_option_type(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export.onnx", "tolerance": "small"}]))
    _assert_clean_error(result, "recipe.json: passes[0].tolerance: 'small' is not of type 'number'")


def test_out_of_range_value(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export.onnx", "tolerance": 1.5}]))
    _assert_clean_error(result, "recipe.json: passes[0].tolerance: 1.5 is greater than the maximum of 1")


def test_unknown_key_in_step_and_envelope(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export.onnx", "opsett": 17}], colour="red"))
    _assert_clean_error(result, "recipe.json: passes[0]: unknown key 'opsett'", "did you mean 'opset'",
                        "recipe.json: (root): unknown key 'colour'")


def test_all_problems_reported_at_once(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export.onnx", "tolerance": -1}, {"pass": "nope"}],
                                     budget={"latency": 3}))
    _assert_clean_error(result, "passes[0].tolerance", "passes[1].pass: unknown pass 'nope'", "budget: unknown key 'latency'")


def test_missing_model(cli, make_recipe):
    result = cli("plan", make_recipe(model=None))
    _assert_clean_error(result, "recipe.json: (root): 'model' is a required property")


def test_bad_json_syntax_has_line_and_column(cli, make_recipe):
    result = cli("plan", make_recipe(raw='{\n  "schema_version": 1,\n  "name": "x",,\n}'))
    _assert_clean_error(result, "recipe.json: invalid JSON at line 3, column 15")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_rejected(cli, make_recipe, literal):
    raw = json.dumps({"schema_version": 1, "name": "x", "model": {"source": "torch"}, "passes": []}).replace(
        '"passes": []', f'"passes": [{{"pass": "export.onnx", "tolerance": {literal}}}]')
    result = cli("plan", make_recipe(raw=raw))
    _assert_clean_error(result, f"recipe.json: passes[0].tolerance: {literal} is not valid JSON")


def test_duplicate_keys_rejected(cli, make_recipe):
    raw = '{"schema_version": 1, "name": "a", "name": "b", "model": {"source": "torch"}, "passes": [{"pass": "export"}]}'
    _assert_clean_error(cli("plan", make_recipe(raw=raw)), "recipe.json: name: duplicate key 'name'")


def test_future_schema_version(cli, make_recipe):
    result = cli("plan", make_recipe(schema_version=99))
    _assert_clean_error(result, "schema_version 99 is newer than this shrink supports (1)", "upgrade shrink")


def test_missing_schema_version(cli, make_recipe):
    _assert_clean_error(cli("plan", make_recipe(schema_version=None)), "missing required key 'schema_version'")


def test_unknown_target_did_you_mean(cli, make_recipe):
    result = cli("plan", make_recipe(target="cortx-a53"))
    _assert_clean_error(result, "recipe.json: target: unknown target 'cortx-a53'", "did you mean 'cortex-a53'")


def test_target_override_on_command_line(cli, make_recipe):
    result = cli("plan", make_recipe(), "--target", "avx2", "--json")
    assert result.code == 0
    assert result.json["plan"]["target"] == "x86-64-avx2"


def test_target_from_profile_file(cli, make_recipe, tmp_path):
    profile = tmp_path / "board.json"
    profile.write_text(json.dumps({"name": "my-board", "extends": "cortex-a53", "storage": {"bytes": 1000}}))
    result = cli("plan", make_recipe(), "--target", profile, "--json")
    assert result.code == 0, result.err
    assert result.json["plan"]["target"] == "my-board"


def test_bad_target_profile_file(cli, make_recipe, tmp_path):
    profile = tmp_path / "board.json"
    profile.write_text(json.dumps({"name": "my-board", "storage": {"bytes": -1}}))
    _assert_clean_error(cli("plan", make_recipe(), "--target", profile), "board.json: storage.bytes: -1 is less than the minimum of 1")


def test_bare_kind_resolves_to_default(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export"}]), "--json")
    assert result.code == 0, result.err
    assert result.json["plan"]["passes"][0]["pass"] == "export.onnx"


def test_chain_must_end_in_onnx_and_types_check(cli, make_recipe, tmp_path):
    onnx_recipe = make_recipe(filename="onnx.json", model={"source": "onnx", "path": str(tmp_path / "tiny.py")})
    result = cli("plan", onnx_recipe)
    _assert_clean_error(result, "passes[0].pass: export.onnx consumes torch but receives onnx here")


def test_relative_paths_resolve_against_recipe_dir(cli, make_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    assert cli("plan", make_recipe()).code == 0
    result = cli("plan", make_recipe(model={"source": "torch", "factory": "missing.py:tiny", "input_shape": [1, 1, 8, 8]}))
    _assert_clean_error(result, "recipe.json: model: factory file", str(tmp_path / "missing.py"))


def test_missing_weights_caught_at_plan_time(cli, make_recipe):
    model = {"source": "torch", "factory": "tiny.py:tiny", "weights": "w.pt", "input_shape": [1, 1, 8, 8]}
    _assert_clean_error(cli("plan", make_recipe(model=model)), "recipe.json: model: weights file")


def test_invalid_name_cannot_escape_output_dir(cli, make_recipe):
    _assert_clean_error(cli("plan", make_recipe(name="../../etc")), "recipe.json: name: '../../etc' does not match")


def test_recipe_not_found_and_not_object(cli, make_recipe, tmp_path):
    _assert_clean_error(cli("plan", tmp_path / "nope.json"), "no such file")
    _assert_clean_error(cli("plan", make_recipe(raw="[1, 2]")), "a recipe must be a JSON object")


def test_json_errors_shape(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "export.onnnx"}]), "--json")
    assert result.code == 2
    payload = result.json
    assert payload["verdict"] == "error" and payload["exit_code"] == 2 and payload["bundle"] is None
    assert payload["errors"][0]["where"] == "recipe.json: passes[0].pass"
    assert payload["errors"][0]["hint"].startswith("did you mean")


def test_impossible_pass_order_rejected_with_reason(cli, make_recipe):
    result = cli("plan", make_recipe(passes=[{"pass": "quantize"}, {"pass": "export"}, {"pass": "prune", "ratio": 0.3}]))
    _assert_clean_error(result, "passes[0].pass: quantize.ptq consumes onnx but receives torch here",
                        "add a pass that turns torch into onnx before it: export.onnx, quantize.qat", "passes[2].pass: prune.structured consumes torch but receives onnx here")


def test_every_recipe_object_takes_a_description(cli, make_recipe):
    recipe = make_recipe(
        description="the envelope",
        model={"source": "torch", "factory": "tiny.py:tiny", "allow_random_weights": True, "description": "why this model",
               "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "description": "8x8 grey digits"}]},
        data={"source": "sklearn.digits", "image_size": 8, "description": "the data"},
        budget={"accuracy_drop": 0.5, "description": "a loose gate"},
        passes=[{"pass": "export.onnx", "description": "the deployable format"}])
    result = cli("plan", recipe, "--json")
    assert result.code == 0, result.err
    assert "description" not in result.json["plan"]["passes"][0]["options"]
    assert cli("plan", make_recipe(passes=[{"pass": "export.onnx", "description": 3}])).code == 2


def test_a_misspelt_factory_callable_is_a_plan_error_with_did_you_mean(cli, make_recipe):
    model = {"source": "torch", "factory": "tiny.py:tinny", "input_shape": [1, 1, 8, 8]}
    result = cli("plan", make_recipe(model=model), "--json")
    assert result.code == 2
    assert "tiny.py defines no 'tinny'; did you mean 'tiny'?" in result.json["errors"][0]["message"]


def test_an_unknown_dataset_lists_the_installed_ones(cli, make_recipe):
    result = cli("plan", make_recipe(data={"source": "cifar10"}), "--json")
    assert result.code == 2
    (error,) = [e for e in result.json["errors"] if e["where"].endswith("data.source")]
    assert "installed datasets:" in error["hint"] and "sklearn.digits" in error["hint"]
