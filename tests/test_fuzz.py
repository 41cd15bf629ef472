"""Property-based fuzzing of recipes and target profiles through the real CLI (in-process).

Each example mutates a valid recipe or profile structurally: a wrong type, a deleted key, an extra key,
a huge or negative number, a NaN/Infinity literal, deep nesting, a unicode or empty string, or a
duplicate key. Whatever the mutation, `shrink` must end with exit 0 or 2 (never 1, never a traceback);
exit 2 must come with an error naming the file and the JSON path; and a mutation that is invalid by
construction (or by the independent schema check, for profiles) must be exit 2.

`SHRINK_FUZZ_EXAMPLES=N` sets the examples per test (CI default: a few hundred in all); `bench/fuzz.py`
runs at least 1,000 per surface and prints the counts.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shrink.cli.main import main
from shrink.support.jsonio import json_path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("SHRINK_FUZZ_EXAMPLES", "0")) or None

TINY_FACTORY = '''
import torch
from torch import nn


def tiny(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Flatten(), nn.Linear(width * 8 * 8, 10))
'''

BASE_RECIPE: dict[str, Any] = {
    "schema_version": 1,
    "name": "tiny",
    "description": "fuzz base",
    "model": {"source": "torch", "factory": "tiny.py:tiny", "input_shape": [1, 1, 8, 8], "allow_random_weights": True},
    "data": {"source": "sklearn.digits", "image_size": 8, "seed": 0},
    "target": "cortex-a53",
    "seed": 0,
    "budget": {"accuracy_drop": 0.5, "latency_ms": 10, "model_bytes": 1000000},
    "passes": [
        {"pass": "distill.kd", "student": {"factory": "tiny.py:tiny"}, "epochs": 2, "lr": 0.003, "augment": True},
        {"pass": "prune.structured", "ratio": 0.3, "finetune_epochs": 1, "importance": "bn_scale"},
        {"pass": "fuse.bn"},
        {"pass": "export.onnx", "opset": 17, "tolerance": 0.001},
        {"pass": "quantize.ptq", "calibration_samples": 32},
        {"pass": "fuse.ort"},
    ],
}
BASE_PROFILE: dict[str, Any] = json.loads((REPO / "targets" / "cortex-a53.json").read_text())

# Keys whose deletion makes a recipe invalid (None stands for "any list index").
_REQUIRED_RECIPE = {("schema_version",), ("name",), ("model",), ("passes",), ("model", "source"), ("model", "factory"),
                    ("model", "input_shape"), ("data", "source"), ("passes", None, "pass"), ("passes", 0, "student"),
                    ("passes", 0, "student", "factory")}
# String values that no strictly typed recipe field accepts (free text such as `description` aside).
BAD_STRINGS = ["", " ", "ünïcødé ☃", "\u202e\u0000", "\ud800", "😀" * 40, "x" * 5000, "[bold]markup[/]", "../../x",
               "C:\\nope\\y.py:f", "%s%n{0}"]
_SENTINEL = "\u0001fuzz-raw\u0001"
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Mutation:
    """One mutated document: its text, what was done where, and what `shrink` must say about it."""

    text: str
    kind: str
    path: Path_
    expect_path: Path_ | None  # an error must name this path (or one below it); None: any JSON path will do
    must_fail: bool | None  # True: invalid by construction; None: decided by an independent check (or either)

    def describe(self) -> str:
        return f"{self.kind} at {json_path(self.path)}"


def _walk(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, path + (i,))


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _dump(doc: Any, raw: str | None = None) -> str:
    text = json.dumps(doc, indent=1)
    if raw is not None:
        text = text.replace(json.dumps(_SENTINEL), raw, 1)
    return text


def _required(path: Path_) -> bool:
    return any(len(req) == len(path) and all(r is None or r == p for r, p in zip(req, path)) for req in _REQUIRED_RECIPE)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "str", list: "list", dict: "dict"}.get(type(value), "null")


_OTHER_VALUES: dict[str, Any] = {"str": "seven", "number": 7, "bool": True, "list": [1, "a"], "dict": {"k": 1}}


@st.composite
def mutations(draw: st.DrawFn, base: dict[str, Any], recipe: bool) -> Mutation:
    """A structural mutation of `base`; for recipes `must_fail` is decided by construction."""
    doc = copy.deepcopy(base)
    paths = [p for p, _ in _walk(doc)]
    kind = draw(st.sampled_from(["wrong_type", "delete", "extra_key", "number", "nan_inf", "deep", "string", "duplicate"]))
    strict = True if recipe else None

    if kind == "wrong_type":
        path = draw(st.sampled_from(paths))
        old = _kind_of(_get(doc, path))
        new = draw(st.sampled_from([k for k in _OTHER_VALUES if k != old]))
        return Mutation(_dump(_set(doc, path, copy.deepcopy(_OTHER_VALUES[new]))), kind, path, path, strict)

    if kind == "delete":
        path = draw(st.sampled_from([p for p in paths if p]))
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        required = recipe and _required(path)
        return Mutation(_dump(doc), kind, path, path[:-1] if required else None, True if required else None)

    if kind == "extra_key":
        path = draw(st.sampled_from([p for p, v in _walk(doc) if isinstance(v, dict)]))
        key = "zz" + draw(st.text(max_size=12))
        _get(doc, path)[key] = draw(st.sampled_from([1, "x", None, [], {}]))
        return Mutation(_dump(doc), kind, path, path, strict)

    if kind == "number":
        path = draw(st.sampled_from([p for p, v in _walk(doc) if _kind_of(v) == "number"]))
        choice = draw(st.sampled_from(["negative", "huge", "giant", "overflow"]))
        if choice == "negative":
            value = draw(st.sampled_from([-1, -0.5, -(10**30), -1e308]))
            return Mutation(_dump(_set(doc, path, value)), f"{kind}:{value!r}", path, path, True if recipe else None)
        if choice == "huge":
            value = draw(st.sampled_from([3 * 2**31, 2**63, 10**40, 1e308]))
            must = True if recipe and path[0] != "budget" else None
            return Mutation(_dump(_set(doc, path, value)), f"{kind}:{value!r}", path, path, must)
        raw = "1" + "0" * draw(st.integers(401, 20000)) if choice == "giant" else draw(st.sampled_from(["1e400", "-1e400", "2e308"]))
        return Mutation(_dump(_set(doc, path, _SENTINEL), raw), f"{kind}:{raw[:8]}", path, path, True)

    if kind == "nan_inf":
        path = draw(st.sampled_from([p for p in paths if p]))
        raw = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return Mutation(_dump(_set(doc, path, _SENTINEL), raw), f"{kind}:{raw}", path, path, True)

    if kind == "deep":
        path = draw(st.sampled_from([p for p in paths if p]))
        depth = draw(st.integers(65, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a": ', "}")]))
        raw = opener * depth + "1" + closer * depth
        return Mutation(_dump(_set(doc, path, _SENTINEL), raw), f"{kind}:{depth}", path, path, True)

    if kind == "string":
        path = draw(st.sampled_from([p for p, v in _walk(doc) if isinstance(v, str)]))
        fixed = draw(st.booleans())
        value = draw(st.sampled_from(BAD_STRINGS)) if fixed else draw(st.text(max_size=30))
        must = True if recipe and fixed and path != ("description",) else None
        return Mutation(_dump(_set(doc, path, value)), f"{kind}:{value[:12]!r}", path, path, must)

    # duplicate: repeat an existing key of some object, with any value
    path = draw(st.sampled_from([p for p, v in _walk(doc) if isinstance(v, dict) and v]))
    key = draw(st.sampled_from(sorted(_get(doc, path))))
    dup = json.dumps(draw(st.sampled_from([1, "x", None, [1], {"a": 1}])))
    _get(doc, path)[_SENTINEL] = 0
    text = _dump(doc).replace(f"{json.dumps(_SENTINEL)}: 0", f"{json.dumps(key)}: {dup}", 1)
    return Mutation(text, kind, path, path + (key,), True)


def profile_is_valid(mutation: Mutation) -> bool:
    """The independent check for profiles: strict JSON (by construction) plus the published JSON Schema."""
    if mutation.must_fail:
        return False
    from jsonschema import Draft202012Validator

    schema = json.loads((REPO / "shrink" / "schemas" / "target.schema.json").read_text())
    return Draft202012Validator(schema).is_valid(json.loads(mutation.text))


# running the CLI ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def run_cli(*args: str | Path) -> Outcome:
    """`shrink ARGS` in-process, stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return Outcome(code, out.getvalue(), err.getvalue())


def _error_wheres(outcome: Outcome, json_mode: bool) -> list[str]:
    if json_mode:
        payload = json.loads(outcome.out)  # exactly one JSON object on stdout
        assert payload["exit_code"] == outcome.code and payload["verdict"] == "error"
        return [e["where"] for e in payload["errors"]]
    return [m.group(1) for m in re.finditer(r"^error: (.*)$", outcome.err, re.M)]


def check_outcome(outcome: Outcome, mutation: Mutation, label: str, json_mode: bool, must_fail: bool | None,
                  allowed: tuple[int, ...] = (0, 2)) -> None:
    """The properties every fuzz case must have; raises AssertionError naming the case."""
    case = f"{mutation.describe()}: exit {outcome.code}\n{outcome.err[-2000:]}"
    assert "Traceback" not in outcome.out + outcome.err, case
    assert outcome.code in allowed, case
    if must_fail:
        assert outcome.code == 2, case
    if must_fail is False:
        assert outcome.code == 0, case
    if outcome.code != 2:
        return
    wheres = _error_wheres(outcome, json_mode)
    ours = [w for w in wheres if w == label or w.startswith(f"{label}: ")]
    assert ours, f"no error names {label}: {case}"
    nested_too_deep = "nested more than" in outcome.err and mutation.kind.startswith("deep")
    if mutation.expect_path is not None and must_fail and not nested_too_deep:
        path = mutation.expect_path
        if path and isinstance(path[-1], int):  # a list item may be judged with its list (e.g. a shape's size)
            path = path[:-1]
        expected = f"{label}: {json_path(path)}"
        root = f"{label}: (root)"
        assert any(w.startswith(expected) or (expected.startswith(root) and w.startswith(root)) for w in ours), \
            f"no error names {expected!r} (got {ours}): {case}"


@dataclass
class Workspace:
    root: Path
    recipe: Path
    valid_recipe: Path
    profile: Path
    output: Path


def make_workspace(root: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tiny.py").write_text(TINY_FACTORY)
    valid = root / "valid.json"
    valid.write_text(json.dumps(BASE_RECIPE))
    return Workspace(root, root / "recipe.json", valid, root / "board.json", root / "out")


def fuzz_plan(ws: Workspace, mutation: Mutation, json_mode: bool) -> Outcome:
    ws.recipe.write_text(mutation.text, encoding="utf-8")
    outcome = run_cli("plan", ws.recipe, *(["--json"] if json_mode else []))
    check_outcome(outcome, mutation, ws.recipe.name, json_mode, mutation.must_fail)
    return outcome


def fuzz_compile(ws: Workspace, mutation: Mutation, json_mode: bool) -> Outcome:
    assert mutation.must_fail, "compile is only fuzzed with recipes that are invalid by construction"
    ws.recipe.write_text(mutation.text, encoding="utf-8")
    outcome = run_cli("compile", ws.recipe, "-o", ws.output, *(["--json"] if json_mode else []))
    check_outcome(outcome, mutation, ws.recipe.name, json_mode, True, allowed=(2,))
    assert not ws.output.exists(), "compile created an output directory for an invalid recipe"
    assert not list(ws.root.glob(".out.shrink-*")), "compile left temporaries"
    return outcome


def fuzz_target(ws: Workspace, mutation: Mutation, json_mode: bool) -> list[Outcome]:
    ws.profile.write_text(mutation.text, encoding="utf-8")
    valid = profile_is_valid(mutation)
    flag = ["--json"] if json_mode else []
    shown = run_cli("targets", ws.profile, *flag)
    check_outcome(shown, mutation, str(ws.profile), json_mode, not valid)
    if valid:
        assert shown.code == 0, f"{mutation.describe()}: a schema-valid profile was refused\n{shown.err}"
    planned = run_cli("plan", ws.valid_recipe, "--target", ws.profile, *flag)
    # a schema-valid profile may still not suit the recipe's passes (exit 2 naming the recipe): no path check then
    check_outcome(planned, mutation, str(ws.profile) if not valid else ws.valid_recipe.name, json_mode,
                  True if not valid else None)
    return [shown, planned]


# the tests ----------------------------------------------------------------------------------------

def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("fuzz"))


def test_base_documents_are_valid(ws: Workspace) -> None:
    assert run_cli("plan", ws.valid_recipe).code == 0
    ws.profile.write_text(json.dumps(BASE_PROFILE))
    assert run_cli("targets", ws.profile).code == 0
    assert run_cli("plan", ws.valid_recipe, "--target", ws.profile).code == 0


@pytest.mark.slow
@fuzz_settings(EXAMPLES or 150)
@given(mutation=mutations(BASE_RECIPE, recipe=True), json_mode=st.booleans())
def test_fuzzed_recipe_plan(ws: Workspace, mutation: Mutation, json_mode: bool) -> None:
    fuzz_plan(ws, mutation, json_mode)


@pytest.mark.slow
@fuzz_settings(EXAMPLES or 80)
@given(mutation=mutations(BASE_RECIPE, recipe=True).filter(lambda m: bool(m.must_fail)), json_mode=st.booleans())
def test_fuzzed_recipe_compile_stops_at_validation(ws: Workspace, mutation: Mutation, json_mode: bool) -> None:
    fuzz_compile(ws, mutation, json_mode)


@pytest.mark.slow
@fuzz_settings(EXAMPLES or 80)
@given(mutation=mutations(BASE_PROFILE, recipe=False), json_mode=st.booleans())
def test_fuzzed_target_profile(ws: Workspace, mutation: Mutation, json_mode: bool) -> None:
    fuzz_target(ws, mutation, json_mode)


@pytest.mark.parametrize("text, where", [
    ('{"schema_version": 1, "schema_version": 1}', "recipe.json: schema_version"),
    ("[1, 2]", "recipe.json: (root)"),
    ('"just a string"', "recipe.json: (root)"),
    ("{" * 100000, "recipe.json"),
    ('{"schema_version": 1e400}', "recipe.json: schema_version"),
    ('{"schema_version": ' + "9" * 5000 + "}", "recipe.json: schema_version"),
])
def test_hand_picked_malformed_recipes(ws: Workspace, text: str, where: str) -> None:
    ws.recipe.write_text(text)
    outcome = run_cli("plan", ws.recipe, "--json")
    assert outcome.code == 2 and "Traceback" not in outcome.err
    assert any(e["where"].startswith(where) for e in json.loads(outcome.out)["errors"]), outcome.out


def test_non_string_target_is_a_type_error_not_a_crash(ws: Workspace) -> None:
    ws.recipe.write_text(json.dumps({**BASE_RECIPE, "target": 5}))
    outcome = run_cli("plan", ws.recipe, "--json")
    assert outcome.code == 2
    assert [e["where"] for e in json.loads(outcome.out)["errors"]] == ["recipe.json: target"]


def test_long_values_are_elided_in_messages(ws: Workspace) -> None:
    ws.recipe.write_text(json.dumps({**BASE_RECIPE, "name": "n" * 10000, "passes": [{"pass": "p" * 10000}]}))
    outcome = run_cli("plan", ws.recipe)
    assert outcome.code == 2 and max(map(len, outcome.err.splitlines())) < 300, outcome.err[:500]


Runner = Callable[[Workspace, Mutation, bool], Any]
SURFACES: dict[str, tuple[Any, Runner]] = {
    "plan": (mutations(BASE_RECIPE, recipe=True), fuzz_plan),
    "compile": (mutations(BASE_RECIPE, recipe=True).filter(lambda m: bool(m.must_fail)), fuzz_compile),
    "targets+plan --target": (mutations(BASE_PROFILE, recipe=False), fuzz_target),
}
