"""Resolve a recipe against the installed plugins and a target into a `Plan`, checking it statically.

Nothing here loads a model or data: `shrink plan` stops after this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shrink.api.context import ModelFamily, PlanContext
from shrink.api.inputs import unpinned
from shrink.api.passes import DataProvider, Pass, PassOptions, Source
from shrink.api.recipe import Recipe
from shrink.api.target import Target
from shrink.errors import Problem, RecipeError, ShrinkError
from shrink.host.registry import SINGULAR, Entry, Registry
from shrink.support.jsonio import json_path
from shrink.support.validation import brief, schema_problems

DEPLOY_FORMATS = ("onnx", "tflite")  # what a bundle can carry as its deployable model (`model.<format>`)


DESCRIPTION = {"type": "string", "description": "a note for people reading the recipe; shrink ignores it"}


def options_schema(options: type[PassOptions], discriminator: str | None = None, value: str | None = None) -> dict[str, Any]:
    """The JSON Schema of a step (or model/data section) generated from its `Options` class."""
    schema = options.model_json_schema()
    schema.pop("title", None)
    schema["additionalProperties"] = False
    if discriminator:
        props = {discriminator: {"const": value} if value else {"type": "string"}}
        props.update(schema.get("properties", {}))
        props.setdefault("description", DESCRIPTION)
        schema["properties"] = props
        schema["required"] = [discriminator, *schema.get("required", [])]
    return schema


def _pydantic_problems(exc: ValidationError, label: str, prefix: tuple[str | int, ...]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # pydantic names the member of a union it tried (`function-after[check(), list[int]]`): not a JSON path part
        loc = tuple(part for part in err["loc"] if part != "__root__" and not (isinstance(part, str) and "[" in part))
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(Problem(f"{label}: {json_path(prefix + loc)}", message))
    return problems


@dataclass(frozen=True)
class Step:
    """A resolved recipe step: pass index, the pass instance and the formats flowing in and out."""

    index: int
    entry: Entry
    instance: Pass
    input_format: str

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def where(self) -> str:
        return f"passes[{self.index}] ({self.name})"


@dataclass(frozen=True)
class Plan:
    """Everything needed to run: the recipe, target, source, data provider, steps and the model family
    (the source's; passes keep it)."""

    recipe: Recipe
    target: Target
    source: Source
    source_entry: Entry
    data: DataProvider | None
    data_entry: Entry | None
    steps: tuple[Step, ...]
    family: ModelFamily
    shapes: dict[str, list[int]] = field(default_factory=dict)  # --shape: input shapes pinned on the command line
    inputs: list[dict[str, Any]] | None = None  # the model's inputs as its source declares them (`Source.inputs`)
    spaces: tuple[Any, ...] = ()  # `$search` spaces (`shrink.plan.spaces.Space`): planned at their first values

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": str(self.recipe.path),
            "name": self.recipe.name,
            "target": self.target.name,
            "source": {"source": self.source_entry.name, "plugin": self.source_entry.plugin.label,
                       "produces": self.source.produces, "family": self.family.name},
            "data": self.data_entry.name if self.data_entry else None,
            "budget": self.recipe.budget,
            "passes": [
                {"index": s.index, "pass": s.name, "plugin": s.entry.plugin.label, "consumes": s.input_format,
                 "produces": s.instance.produces, "options": s.instance.options.model_dump(mode="json")}
                for s in self.steps
            ],
            **({"search": [space.as_dict() for space in self.spaces]} if self.spaces else {}),
        }


class _Planner:
    def __init__(self, recipe: Recipe, registry: Registry) -> None:
        self.recipe = recipe
        self.registry = registry
        self.label = recipe.label
        self.problems: list[Problem] = []

    def add(self, path: tuple[str | int, ...], message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(f"{self.label}: {json_path(path)}", message, hint))

    def section(self, key: str, kind: str, discriminator: str = "source") -> tuple[Any, Entry] | None:
        raw = self.recipe.raw.get(key)
        if not isinstance(raw, dict) or not isinstance(raw.get(discriminator), str):
            return None  # the envelope problems already say why
        name = raw[discriminator]
        entry = self.registry.get(kind, name)
        if entry is None:
            self.add((key, discriminator), f"unknown {SINGULAR[kind]} {brief(name)}", self.registry.suggest(kind, name))
            return None
        return self.instantiate(entry, raw, (key,), discriminator)

    def instantiate(self, entry: Entry, raw: dict[str, Any], path: tuple[str | int, ...], discriminator: str) -> tuple[Any, Entry] | None:
        schema = options_schema(entry.obj.Options, discriminator)
        problems = schema_problems(raw, schema, self.label, path)
        if problems:
            self.problems.extend(problems)
            return None
        try:
            options = entry.obj.Options.from_section(raw, discriminator)
        except ValidationError as exc:
            self.problems.extend(_pydantic_problems(exc, self.label, path))
            return None
        return entry.obj(options), entry

    def resolve_pass(self, index: int, raw: Any) -> tuple[Pass, Entry] | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("pass"), str):
            return None
        name = raw["pass"]
        entry = self.registry.get("passes", name)
        if entry is None and "." not in name:
            entry = self.registry.default_pass(name)
        if entry is None:
            self.add(("passes", index, "pass"), f"unknown pass {brief(name)}", self.registry.suggest("passes", name))
            return None
        return self.instantiate(entry, raw, ("passes", index), "pass")


def make_plan(recipe: Recipe, registry: Registry, target_override: str | None = None,
              shapes: dict[str, list[int]] | None = None, target_where: str = "--target") -> Plan:
    """Resolve and statically check `recipe` (`shapes` pin model inputs by name, as `--shape` does; problems with
    `target_override` are labelled `target_where`); all problems are raised together as a `RecipeError`."""
    registry.ensure_consistent()
    planner = _Planner(recipe, registry)
    planner.problems.extend(recipe.problems)
    catalog = registry.catalog()

    target: Target | None = None
    target_name = target_override or recipe.raw.get("target")
    if not isinstance(target_name, str):
        target_name = None
    if target_name is None and "target" not in recipe.raw:
        planner.add(("target",), "no target given", "set \"target\" in the recipe or pass --target")
    elif target_name is not None:  # a non-string "target" is already an envelope problem
        where = target_where if target_override else f"{recipe.label}: target"
        try:
            target = catalog.resolve(target_name, where)
        except ShrinkError as exc:
            planner.problems.extend(exc.problems)

    source = planner.section("model", "sources")
    data = planner.section("data", "datasets")
    raw_passes = recipe.raw.get("passes")
    resolved = [planner.resolve_pass(i, raw) for i, raw in enumerate(raw_passes if isinstance(raw_passes, list) else [])]

    if planner.problems or target is None or source is None or any(r is None for r in resolved):
        raise RecipeError(planner.problems or [Problem(recipe.label, "the recipe could not be resolved")])

    steps = _chain(planner, source[0], [r for r in resolved if r is not None], target)
    data_provider = data[0] if data else None
    family = registry.family_for(source[0].family, source[0].produces)
    inputs = _preconditions(planner, target, family, source[0], data_provider, steps, dict(shapes or {}))
    if planner.problems:
        raise RecipeError(planner.problems)
    return Plan(recipe, target, source[0], source[1], data_provider, data[1] if data else None, tuple(steps), family,
                dict(shapes or {}), inputs)


def _chain(planner: _Planner, source: Source, resolved: list[tuple[Pass, Entry]], target: Target) -> list[Step]:
    steps = []
    fmt = source.produces
    for index, (instance, entry) in enumerate(resolved):
        steps.append(Step(index, entry, instance, fmt))
        if fmt not in instance.consumes:
            producers = sorted(
                e.name for e in planner.registry.entries["passes"].values()
                if e.obj.produces in instance.consumes and fmt in e.obj.consumes
            )
            hint = f"add a pass that turns {fmt} into {' or '.join(instance.consumes)} before it: {', '.join(producers)}" if producers else None
            planner.add(("passes", index, "pass"),
                        f"{entry.name} consumes {'/'.join(instance.consumes)} but receives {fmt} here", hint)
        fmt = instance.produces
    if fmt not in DEPLOY_FORMATS and not planner.problems:
        planner.add(("passes",), f"the last pass produces {fmt}, but a bundle needs an {' or '.join(DEPLOY_FORMATS)} model",
                    "end the recipe with an 'export' pass")
    loadable = target.get("runtime", "formats")
    if loadable and fmt not in loadable and not planner.problems:
        producers = sorted(e.name for e in planner.registry.entries["passes"].values()
                           if e.obj.produces in loadable and fmt in e.obj.consumes)
        runtime = target.get("runtime", "name", default="its runtime")
        hint = (f"end the recipe with a pass that produces {' or '.join(loadable)}: {', '.join(producers)}" if producers
                else f"no installed pass produces {' or '.join(loadable)}; choose a target whose runtime loads {fmt}")
        planner.add(("passes",), f"the recipe ends in an {fmt} model, which {target.name}'s runtime {runtime} cannot load "
                                 f"(runtime.formats: {', '.join(loadable)})", hint)
    return steps


def _preconditions(planner: _Planner, target: Target, family: ModelFamily, source: Source, data: DataProvider | None,
                   steps: list[Step], shapes: dict[str, list[int]]) -> list[dict[str, Any]] | None:
    """Run every plan-time check; return the model's inputs as its source declares them (None: not known)."""
    ctx = PlanContext(planner.recipe, target, family=family, shapes=shapes)
    source_problems = source.check(ctx)
    for message in source_problems:
        planner.add(("model",), message)
    inputs = source.inputs(ctx) if not source_problems else None
    for name, dims in unpinned(inputs or []):
        planner.add(("model", "inputs"), f"input {name!r} has dimensions nothing pins: {dims}",
                    f'pin them in the recipe ("inputs": [{{"name": "{name}", "shape": [...]}}]) or with --shape {name}=1x...')
    ctx = dataclasses.replace(ctx, inputs=inputs, model_meta=source.plan_meta(ctx) if not source_problems else {})
    if data is not None:
        for message in data.check(ctx):
            planner.add(("data",), message)
    for step in steps:
        needs = step.instance.requires
        path: tuple[str | int, ...] = ("passes", step.index)
        missing = type(step.instance).unavailable()
        if missing:
            planner.add(path, f"{step.name} is not available in this installation: {missing}")
            continue
        if needs and data is None:
            planner.add(path, f"{step.name} needs data ({', '.join(sorted(needs))}) but the recipe has no 'data' section")
        elif data is not None:
            missing = sorted(n for n in needs if n not in ("data", "labels") and n not in data.splits)
            if missing:
                planner.add(path, f"{step.name} needs the {', '.join(missing)} split(s), which data source {data.name!r} does not provide")
            if "labels" in needs and not data.labels:
                planner.add(path, f"{step.name} needs labelled data; data source {data.name!r} has no labels")
        for message in step.instance.check(dataclasses.replace(ctx, index=step.index)):
            planner.add(path, message)
    budget = planner.recipe.budget
    for key in ("accuracy_drop", "accuracy"):
        if key in budget and (data is None or not data.labels):
            planner.add(("budget", key), "an accuracy budget needs labelled data in the recipe's 'data' section")
    return inputs
