"""The Python API mirrors the CLI: the same result objects `--json` prints, the `ShrinkError` family instead of exit
codes, no torch for plan/verify/inspect, labels that name the Python arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import shrink
from shrink.testing import default_recipe


@pytest.fixture
def bundle(make_recipe, tmp_path: Path) -> Path:
    result = shrink.compile(make_recipe(), output=tmp_path / "bundle")
    assert isinstance(result, shrink.CompileResult) and result.ok and result.exit_code == 0
    return tmp_path / "bundle"


@pytest.mark.slow
def test_compile_returns_what_compile_json_prints(cli, make_recipe, tmp_path: Path):
    recipe = make_recipe()
    result = shrink.compile(recipe, output=tmp_path / "api", budgets={"macs": 10_000_000})
    printed = cli("compile", recipe, "-o", tmp_path / "cli", "--budget", "macs=10000000", "--json").json
    mine = result.as_dict()
    assert set(mine) == set(printed) >= {"verdict", "exit_code", "bundle", "checks", "errors", "target", "metrics", "findings"}
    assert mine["verdict"] == printed["verdict"] == "pass" and result.bundle == tmp_path / "api"
    assert [c["name"] for c in mine["checks"]] == [c["name"] for c in printed["checks"]] and "macs" in result.manifest["recipe"]["raw"]["budget"]
    assert result.model == tmp_path / "api" / "model.onnx" and result.model.is_file()
    assert result.metrics["macs"] == printed["metrics"]["macs"] and result.target == "cortex-a53"


def test_plan_verify_inspect_return_what_their_json_prints(cli, make_recipe, bundle: Path):
    recipe = make_recipe("other.json")
    assert shrink.plan(recipe).as_dict() == cli("plan", recipe, "--json").json
    assert shrink.verify(bundle, target="cortex-a55").as_dict() == cli("verify", bundle, "-t", "cortex-a55", "--json").json
    model = bundle / "model.onnx"
    assert shrink.inspect(model, target="cortex-m4").as_dict() == cli("inspect", model, "-t", "cortex-m4", "--json").json
    assert shrink.describe_pass("quantize.ptq").as_dict() == cli("passes", "quantize.ptq", "--json").json


def test_a_failed_check_is_a_result_and_raise_for_verdict_makes_it_an_error(make_recipe, tmp_path: Path):
    result = shrink.compile(make_recipe(), output=tmp_path / "b", budgets={"macs": 1})
    assert result.verdict == "fail" and result.exit_code == 4 and [c.name for c in result.failed] == ["macs"]
    assert (tmp_path / "b" / "model.onnx").is_file()  # written, marked FAIL, as the CLI does
    with pytest.raises(shrink.ChecksFailed) as raised:
        result.raise_for_verdict()
    assert raised.value.exit_code == 4 and raised.value.problems[0].where == "macs"


def test_errors_raise_the_shrink_error_family_naming_the_argument(make_recipe, tmp_path: Path):
    recipe = make_recipe()
    with pytest.raises(shrink.UsageError) as raised:
        shrink.plan(recipe, target="raspberrypi")
    assert raised.value.exit_code == 2 and raised.value.problems[0].where == "target"
    assert raised.value.problems[0].hint == "did you mean 'raspberry-pi-4'?"
    with pytest.raises(shrink.UsageError) as raised:
        shrink.plan(recipe, budgets={"latency": 2})
    assert raised.value.problems[0].where.startswith("budgets")
    with pytest.raises(shrink.UsageError) as raised:
        shrink.plan(recipe, shapes={"input": [1, 0, 8]})
    assert raised.value.problems[0].where == "shapes.input"
    with pytest.raises(shrink.UsageError):
        shrink.verify(tmp_path / "nothing-here")
    with pytest.raises(shrink.UsageError) as raised:
        shrink.verify(tmp_path / "recipe.json", allow_incomplete=["speed"])
    assert raised.value.problems[0].where == "allow_incomplete"
    with pytest.raises(shrink.UsageError) as raised:
        shrink.describe_pass("distil.kd")
    assert raised.value.problems[0].hint == "did you mean 'distill.kd'?"


def test_a_recipe_can_be_a_dict_resolved_against_base_dir(tiny_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir("/")
    planned = shrink.plan(default_recipe(), base_dir=tmp_path, shapes={"input": "1x1x8x8"})
    assert planned.passes == ["export.onnx"] and planned.plan.recipe.base_dir == tmp_path
    with pytest.raises(shrink.ShrinkError) as raised:
        shrink.plan({**default_recipe(), "seed": float("nan")}, base_dir=tmp_path)
    assert raised.value.problems[0].where == "recipe"
    with pytest.raises(shrink.ShrinkError) as raised:
        shrink.plan({**default_recipe(), "passes": [{"pass": "export.onnx", "tolerance": 5}]}, base_dir=tmp_path)
    assert raised.value.problems[0].line() == "recipe: passes[0].tolerance: 5 is greater than the maximum of 1"


NOTEBOOK = """
import json, sys
import shrink

bundle, recipe = sys.argv[1], sys.argv[2]
planned = shrink.plan(recipe, target="cortex-a72")
checked = shrink.verify(bundle)
seen = shrink.inspect(bundle + "/model.onnx", target="cortex-a53")
try:
    shrink.verify(bundle, target="nowhere")
    raise SystemExit("an unknown target did not raise")
except shrink.UsageError as error:
    message = error.problems[0].line()
heavy = [m for m in ("torch", "nncf", "transformers", "onnxsim", "sklearn") if m in sys.modules]
print(json.dumps({"passes": planned.passes, "verify": checked.verdict, "checks": [c.name for c in checked.checks],
                  "macs": seen.analysis.macs, "inspect_checks": len(seen.checks), "error": message, "heavy": heavy}))
"""


def test_a_notebook_style_script_plans_verifies_and_inspects_without_torch(bundle: Path, make_recipe, tmp_path: Path):
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    proc = subprocess.run([sys.executable, str(script), str(bundle), str(make_recipe("r.json"))], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["passes"] == ["export.onnx"] and seen["verify"] == "pass" and "golden" in seen["checks"]
    assert seen["macs"] > 0 and seen["inspect_checks"] > 0
    assert seen["error"] == "target: unknown target 'nowhere'"
    assert seen["heavy"] == []


def test_importing_shrink_keeps_plan_the_command():
    import shrink.plan.planner  # the planner subpackage, imported by full name

    assert callable(shrink.plan) and shrink.plan is shrink.commands.plan
    assert sys.modules["shrink.plan"].__name__ == "shrink.plan"
