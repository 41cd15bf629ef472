"""Commands that need no model never import heavy ML libraries."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_subprocess

HEAVY = ("torch", "nncf", "torch_pruning", "onnxsim", "transformers", "sklearn")

PROBE = """
import sys
from shrink.cli.main import main
try:
    code = main({args!r})
except SystemExit as exc:  # --help
    code = exc.code
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write("HEAVY=" + ",".join(heavy) + "\\n")
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["--help"], ["passes"], ["targets"], ["targets", "cortex-a53"], ["plugins"],
                                  ["schema", "recipe"], ["schema", "target"], ["schema", "preprocessing"], ["plan", "{recipe}"],
                                  ["cache", "info"], ["cache", "verify"],
                                  ["cache", "prune", "--max-size", "2GB", "--older-than", "30d"]])
def test_no_heavy_imports(args, make_recipe):
    args = [a.replace("{recipe}", str(make_recipe())) for a in args]
    result = run_subprocess(code=PROBE.format(args=args, heavy=HEAVY))
    assert result.code == 0, result.err
    assert "HEAVY=\n" in result.err, result.err


def test_recipe_schema_composes_plugins(cli):
    result = cli("schema", "recipe")
    schema = json.loads(result.out)
    steps = schema["properties"]["passes"]["items"]["anyOf"]
    export = next(s for s in steps if s["title"] == "export.onnx")
    assert export["properties"]["pass"] == {"const": "export.onnx"}
    tolerance, space = export["properties"]["tolerance"]["anyOf"]  # a value, or a search space (`shrink search`)
    assert tolerance["exclusiveMinimum"] == 0 and space == {"$ref": "#/$defs/search"}
    assert export["additionalProperties"] is False
    assert any(s["properties"]["pass"] == {"const": "export"} for s in steps)  # bare kind
    sources = schema["properties"]["model"]["anyOf"]
    assert {s["title"] for s in sources} >= {"torch", "onnx"}


def test_example_recipes_validate_against_emitted_schema(cli):
    from jsonschema import Draft202012Validator

    from tests.conftest import REPO

    schema = json.loads(cli("schema", "recipe").out)
    validator = Draft202012Validator(schema)
    for path in sorted((REPO / "recipes").glob("*.json")):
        errors = list(validator.iter_errors(json.loads(path.read_text())))
        assert not errors, f"{path.name}: {errors[0].message}"


def test_target_schema(cli):
    schema = json.loads(cli("schema", "target").out)
    assert schema["title"] == "shrink target profile"
