"""Search spaces: a pass option given as `{"$search": {...}}` instead of a value, and the spaces passes declare.

    {"$search": {"choice": [0.1, 0.2, "x"]}}           one of these values
    {"$search": {"int": [4, 32], "step": 4}}           an integer from lo to hi, both included (step optional)
    {"$search": {"float": [1e-4, 1e-2], "log": true}}  a number from lo to hi (log scale optional)

`shrink search` samples them, `shrink plan` validates every bound and choice against the option's schema, and
`shrink compile` refuses them. A recipe without any `$search` is searched over the spaces its passes declare in
their options class (`PassOptions.search_space`), starting from the values the recipe gives.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from shrink.errors import PluginError, Problem
from shrink.host.registry import Entry, Registry
from shrink.support.jsonio import json_path
from shrink.support.validation import brief, schema_problems

MARKER = "$search"
KINDS = ("choice", "int", "float")

MARKER_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": [MARKER],
    "description": "a search space for `shrink search`: {'choice': [...]}, {'int': [lo, hi]} or {'float': [lo, hi], "
                   "'log': true}",
    "properties": {MARKER: {"type": "object", "minProperties": 1, "maxProperties": 3,
                            "properties": {"choice": {"type": "array", "minItems": 1},
                                           "int": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                                           "float": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                                           "log": {"type": "boolean"}, "step": {"type": "number", "exclusiveMinimum": 0}},
                            "additionalProperties": False}},
}
"""What a search space looks like in the recipe schema (`shrink schema recipe`); `parse` gives the clear messages."""


@dataclass(frozen=True)
class Space:
    """One searched option: where it is (`index`, `keys` inside the step) and what it ranges over."""

    index: int
    keys: tuple[str | int, ...]
    kind: Literal["choice", "int", "float"]
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    declared: bool = False  # from the pass's options class, not the recipe

    @property
    def name(self) -> str:
        """The option's place in the recipe (`passes[1].ratio`), also its parameter name in the study."""
        return json_path(("passes", self.index, *self.keys))

    def candidates(self) -> list[Any]:
        """The values `plan` validates: every choice, or both bounds."""
        return list(self.choices) if self.kind == "choice" else [self.cast(self.low), self.cast(self.high)]

    def cast(self, value: Any) -> Any:
        return int(value) if self.kind == "int" else float(value) if self.kind == "float" else value

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return any(_same(value, choice) for choice in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind == "int" and not float(value).is_integer()):
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        extra = (" log" if self.log else "") + (f" step {self.step:g}" if self.step else "")
        return f"{self.kind} [{self.cast(self.low)}, {self.cast(self.high)}]{extra}"

    def as_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = ({"choice": list(self.choices)} if self.kind == "choice"
                                else {self.kind: [self.cast(self.low), self.cast(self.high)]})
        if self.log:
            spec["log"] = True
        if self.step:
            spec["step"] = self.step
        return {"option": self.name, "space": spec, "declared_by_pass": self.declared}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def parse(spec: Any, index: int, keys: tuple[str | int, ...], where: str, declared: bool = False) -> tuple[Space | None, list[Problem]]:
    """The space `spec` (the object inside `$search`) describes, or the problems with it (labelled `where`)."""
    def problem(message: str) -> tuple[None, list[Problem]]:
        return None, [Problem(where, message, 'write {"$search": {"choice": [...]}}, {"int": [lo, hi]} or '
                                              '{"float": [lo, hi], "log": true}')]

    if not isinstance(spec, Mapping):
        return problem(f"a search space must be an object, not {brief(spec)}")
    kinds = [k for k in KINDS if k in spec]
    unknown = sorted(set(spec) - {*KINDS, "log", "step"})
    if unknown:
        return problem(f"unknown key {brief(unknown[0])} in a search space")
    if len(kinds) != 1:
        return problem("a search space names exactly one of 'choice', 'int' or 'float'")
    kind = kinds[0]
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        return problem(f"'log' must be true or false, not {brief(log)}")
    if kind == "choice":
        choices = spec["choice"]
        if not isinstance(choices, list) or not choices:
            return problem("'choice' must be a non-empty list of values")
        if log or step is not None:
            return problem("'log' and 'step' apply to 'int' and 'float' spaces only")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            return problem("'choice' lists a value twice")
        return Space(index, keys, "choice", choices=tuple(choices), declared=declared), []
    bounds = spec[kind]
    number = (lambda v: isinstance(v, int)) if kind == "int" else (lambda v: isinstance(v, (int, float)) and math.isfinite(v))
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(number(v) and not isinstance(v, bool) for v in bounds):
        return problem(f"'{kind}' must be [lo, hi], two {'integers' if kind == 'int' else 'finite numbers'}")
    low, high = bounds
    if low > high:
        return problem(f"the lower bound {low} is greater than the upper bound {high}")
    if log and low <= 0:
        return problem(f"a log-scale space needs a positive lower bound, not {low}")
    if step is not None:
        if log:
            return problem("'step' and 'log' cannot be combined")
        if isinstance(step, bool) or not number(step) or step <= 0:
            return problem(f"'step' must be a positive {'integer' if kind == 'int' else 'number'}, not {brief(step)}")
    return Space(index, keys, kind, low=low, high=high, log=log, step=step, declared=declared), []


def _markers(node: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], Any]]:
    if isinstance(node, Mapping):
        if MARKER in node:
            return [(path, node)]
        return [hit for key, value in node.items() for hit in _markers(value, (*path, key))]
    if isinstance(node, list):
        return [hit for i, value in enumerate(node) for hit in _markers(value, (*path, i))]
    return []


def find(raw: Mapping[str, Any], label: str) -> tuple[list[Space], list[Problem]]:
    """The `$search` spaces written in a recipe, and the problems with them (a space outside pass options is one)."""
    spaces, problems = [], []
    for path, node in _markers(raw, ()):
        where = f"{label}: {json_path(path)}"
        if len(path) < 3 or path[0] != "passes" or path[2] == "pass":
            problems.append(Problem(where, "search spaces are allowed only in pass options",
                                    "search a pass option instead (e.g. passes[1].ratio)"))
            continue
        if set(node) != {MARKER}:
            problems.append(Problem(where, f"a search space holds only {MARKER!r}; found also "
                                           f"{', '.join(repr(k) for k in sorted(set(node) - {MARKER}))}"))
            continue
        space, found = parse(node[MARKER], int(path[1]), tuple(path[2:]), f"{where}.{MARKER}")
        problems.extend(found)
        if space is not None:
            spaces.append(space)
    return spaces, problems


def pass_entry(registry: Registry, raw_step: Any) -> Entry | None:
    """The registered pass a step names (a bare kind means its default pass), as the planner resolves it."""
    if not isinstance(raw_step, Mapping) or not isinstance(raw_step.get("pass"), str):
        return None
    name = raw_step["pass"]
    entry = registry.get("passes", name)
    return entry if entry is not None or "." in name else registry.default_pass(name)


def declared(raw: Mapping[str, Any], registry: Registry) -> list[Space]:
    """The spaces the recipe's passes declare for their main options (`Options.search_space`)."""
    spaces = []
    passes = raw.get("passes")
    for index, step in enumerate(passes if isinstance(passes, list) else []):
        entry = pass_entry(registry, step)
        if entry is None:
            continue
        for key, spec in getattr(entry.obj.Options, "search_space", {}).items():
            space, problems = parse(spec, index, (key,), f"{entry.name}.Options.search_space[{key!r}]", declared=True)
            if problems or key not in entry.obj.Options.model_fields:
                message = problems[0].line() if problems else f"{key!r} is not an option of {entry.name}"
                raise PluginError(f"plugin {entry.plugin.label} declares a bad search space: {message}")
            spaces.append(space)  # type: ignore[arg-type]
    return spaces


def _get(node: Any, keys: tuple[str | int, ...]) -> tuple[bool, Any]:
    for key in keys:
        if isinstance(node, Mapping) and key in node or isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return False, None
    return True, node


def _set(node: Any, keys: tuple[str | int, ...], value: Any) -> None:
    for key in keys[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[keys[-1]] = value


def substitute(raw: Mapping[str, Any], spaces: list[Space], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `raw` with each space's place set to `values[space.name]` (its first candidate when absent)."""
    out = copy.deepcopy(dict(raw))
    for space in spaces:
        _set(out["passes"][space.index], space.keys, values.get(space.name, space.candidates()[0]))
    return out


def given(raw: Mapping[str, Any], spaces: list[Space], registry: Registry) -> dict[str, Any] | None:
    """The values the recipe itself gives the (declared) spaces, option defaults for the keys it leaves out; None when
    one of them lies outside its space (the recipe as written cannot be a trial)."""
    values = {}
    for space in spaces:
        found, value = _get(raw["passes"][space.index], space.keys)
        if not found:
            entry = pass_entry(registry, raw["passes"][space.index])
            field = entry.obj.Options.model_fields.get(str(space.keys[0])) if entry is not None and len(space.keys) == 1 else None
            if field is None or field.is_required():
                return None
            value = field.get_default(call_default_factory=True)
        if not space.contains(value):
            return None
        values[space.name] = value
    return values


def validate(raw: Mapping[str, Any], spaces: list[Space], registry: Registry, label: str) -> list[Problem]:
    """Every choice and bound of every space checked against its option's schema and validators (the other spaces
    of the step at their first candidate); problems name the value inside `$search`."""
    from shrink.plan.planner import options_schema

    problems: list[Problem] = []
    for space in spaces:
        step = raw["passes"][space.index]
        entry = pass_entry(registry, step)
        if entry is None:
            continue  # the planner reports unknown passes
        schema = options_schema(entry.obj.Options, "pass")
        mates = [s for s in spaces if s.index == space.index and s is not space]
        for position, value in enumerate(space.candidates()):
            candidate = copy.deepcopy(dict(step))
            for mate in mates:
                _set(candidate, mate.keys, mate.candidates()[0])
            _set(candidate, space.keys, value)
            where = (f"{label}: {space.name}" if space.declared
                     else f"{label}: {space.name}.{MARKER}.{space.kind}[{position}]")
            found = [p for p in schema_problems(candidate, schema, label, ("passes", space.index))
                     if p.where.startswith(f"{label}: {space.name}")]
            if not found:
                values = {k: v for k, v in candidate.items() if k not in ("pass", "description")}
                try:
                    entry.obj.Options.model_validate(values)
                except ValidationError as exc:
                    found = [Problem(where, str(err["msg"]).removeprefix("Value error, ")) for err in exc.errors()]
            for p in found:
                message = f"{p.message} (the pass's declared search space)" if space.declared else p.message
                problems.append(Problem(where, message, p.hint))
            if found:
                break
    return problems
