"""`plan` and `compile` as Python functions: what `shrink plan` and `shrink compile` run.

    import shrink
    result = shrink.compile("recipe.json", target="cortex-a53", output="dist/net")
    result.verdict, result.bundle, result.metrics["accuracy"], [c.name for c in result.failed]

Errors raise the `ShrinkError` family (`UsageError` exit 2, `PluginError` 3, `PassFailed` 5); a failed check is a
result with verdict "fail" (`raise_for_verdict()` turns it into `ChecksFailed`). The engine is imported on first
use, so `import shrink` and `shrink.plan` load no torch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.commands import arguments
from shrink.commands.arguments import RecipeLike, ShapesLike
from shrink.commands.results import CompileResult, PlanResult
from shrink.errors import Problem, RecipeError

if TYPE_CHECKING:
    from shrink.host.registry import Registry
    from shrink.plan.planner import Plan

Progress = Callable[[str, float, str], None]
"""`progress(task, fraction, text)`: called as the data, the model and each pass advance (fraction 0.0 to 1.0)."""


def make(recipe: RecipeLike, registry: Registry, *, target: str | None = None, shapes: ShapesLike | None = None,
         budgets: Mapping[str, Any] | None = None, base_dir: str | os.PathLike[str] | None = None,
         where: Mapping[str, str] | None = None, searchable: bool = False) -> Plan:
    """The plan of `recipe` (`where` labels the arguments in messages: the command line says `--target`). A recipe
    with `$search` spaces is refused unless `searchable` (`plan` validates them and plans their first values)."""
    from shrink.plan import spaces
    from shrink.plan.load import recipe_from_raw
    from shrink.plan.planner import make_plan

    labels = {"target": "target", "shapes": "shapes", "budgets": "budgets", **(where or {})}
    loaded = arguments.recipe(recipe, budgets, base_dir, labels["budgets"])
    found, problems = spaces.find(loaded.raw, loaded.label)
    if (found or problems) and not searchable:
        hint = f"`shrink search {loaded.label}` searches the spaces and writes best.json, a recipe to compile"
        raise RecipeError(problems or [Problem(f"{loaded.label}: {s.name}", "is a search space; compile needs a value", hint)
                                       for s in found])
    if found or problems:  # `plan`: every choice and bound validated, the rest planned at the first values
        problems += spaces.validate(loaded.raw, found, registry, loaded.label)
        if problems:
            raise RecipeError(problems)
        first = recipe_from_raw(spaces.substitute(loaded.raw, found, {}), loaded.path)
        planned = make_plan(first, registry, target, arguments.shapes(shapes, labels["shapes"]), labels["target"])
        return dataclasses.replace(planned, recipe=loaded, spaces=tuple(found))
    return make_plan(loaded, registry, target, arguments.shapes(shapes, labels["shapes"]), labels["target"])


def plan(recipe: RecipeLike, *, target: str | None = None, shapes: ShapesLike | None = None,
         budgets: Mapping[str, Any] | None = None, base_dir: str | os.PathLike[str] | None = None,
         registry: Registry | None = None) -> PlanResult:
    """Validate and plan `recipe` (a file, or a dict whose paths resolve against `base_dir`); run nothing.

    `target` overrides the recipe's target (a name, alias or profile JSON path), `shapes` pin model inputs by name
    (like `--shape`), `budgets` add to or override the recipe's budget keys. Raises `RecipeError` (exit 2) listing
    every problem."""
    return PlanResult.of(make(recipe, arguments.registry(registry), target=target, shapes=shapes, budgets=budgets,
                              base_dir=base_dir, searchable=True))


def compile(recipe: RecipeLike, *, target: str | None = None, output: str | os.PathLike[str] | None = None,
            budgets: Mapping[str, Any] | None = None, shapes: ShapesLike | None = None, cache: bool = True,
            strict_cache: bool = False, allow_incomplete: bool | str | Iterable[str] | None = None,
            progress: Progress | None = None, base_dir: str | os.PathLike[str] | None = None,
            registry: Registry | None = None) -> CompileResult:
    """Run `recipe` and write its bundle to `output` (default `dist/<name>-<target>/`), as `shrink compile` does.

    The bundle is written whether the checks pass or fail; the result says which (`verdict`, `checks`). `cache`
    False neither reads nor writes the pass cache (`--no-cache`); `strict_cache` makes a damaged entry an error;
    `allow_incomplete` (True, or check names) lets those checks gate on a lower bound when the analysis is
    incomplete instead of failing with "cannot verify". Other arguments as for `plan`."""
    reg = arguments.registry(registry)
    planned = make(recipe, reg, target=target, shapes=shapes, budgets=budgets, base_dir=base_dir)
    return run(planned, reg, output=output, cache=cache, strict_cache=strict_cache,
               allow_incomplete=arguments.allowances(allow_incomplete), progress=progress)


def run(planned: Plan, registry: Registry, *, output: str | os.PathLike[str] | None = None, cache: bool = True,
        strict_cache: bool = False, allow_incomplete: frozenset[str] = frozenset(),
        progress: Progress | None = None) -> CompileResult:
    """Compile a plan made by `make` (the command line plans first, then runs with its progress display)."""
    from shrink.engine.cache import PassCache, default_max_bytes
    from shrink.engine.compile import compile_plan

    store = PassCache(enabled=cache, strict=strict_cache, max_bytes=default_max_bytes())
    outcome = compile_plan(planned, registry, Path(output) if output is not None else None, progress, store,
                           allow_incomplete)
    warnings = [f"({'source' if step.index is None else f'passes[{step.index}] {step.name}'}) {warning}"
                for step in outcome.final.history for warning in (step.details or {}).get("warnings") or []]
    return CompileResult.of(outcome.bundle, planned.target.name, outcome.checks, dict(outcome.final.metrics),
                            outcome.findings, planned, warnings)
