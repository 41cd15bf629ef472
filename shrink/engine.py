"""Run a `Plan`: load the source, run each pass in order, record metrics after each."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.artifact import Artifact, Step
from shrink.context import Context, Dataset
from shrink.errors import PassFailed, PluginError, Problem, ShrinkError
from shrink.plan import Plan
from shrink.registry import Registry

log = logging.getLogger("shrink.engine")

Progress = Callable[[str, float, str], None]  # (task, fraction done, text)


@dataclass(frozen=True)
class RunResult:
    source: Artifact
    final: Artifact
    ctx: Context


@contextmanager
def workspace() -> Iterator[Path]:
    """A private temporary directory for the files passes write; always removed."""
    path = Path(tempfile.mkdtemp(prefix="shrink-run-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _already_ran(history: tuple[Step, ...]) -> str:
    ran = [f"passes[{s.index}] {s.name}" for s in history if s.index is not None]
    return ", ".join(ran) if ran else "none"


def _measure(registry: Registry, artifact: Artifact, ctx: Context) -> dict[str, Any]:
    try:
        return registry.measure(artifact, ctx)
    except ShrinkError:
        raise
    except Exception as exc:
        log.debug("measuring failed", exc_info=True)
        raise PluginError(f"measuring the {artifact.format} artifact failed: {type(exc).__name__}: {exc}") from exc


def run_plan(plan: Plan, registry: Registry, workdir: Path, progress: Progress | None = None) -> RunResult:
    """Execute `plan` inside `workdir`; a failing pass raises `PassFailed` (exit 5)."""
    notify = progress or (lambda task, fraction, text: None)
    recipe = plan.recipe
    ctx = Context(recipe=recipe, target=plan.target, data=None, workdir=workdir, seed=recipe.seed)

    if plan.data is not None:
        notify("data", 0.0, f"loading data ({plan.data_entry.name if plan.data_entry else ''})")
        try:
            dataset = plan.data.load(ctx)
        except ShrinkError:
            raise
        except Exception as exc:
            raise PassFailed(f"loading data failed: {type(exc).__name__}: {exc}", where=f"{recipe.label}: data") from exc
        if not isinstance(dataset, Dataset):
            raise PluginError(f"data source {plan.data.name!r} returned {type(dataset).__name__}, not a shrink Dataset",
                              where=f"plugin {plan.data_entry.plugin.label if plan.data_entry else '?'}")
        ctx.data = dataset

    notify("source", 0.0, f"loading model ({plan.source_entry.name})")
    started = time.perf_counter()
    try:
        artifact = plan.source.load(ctx)
    except ShrinkError:
        raise
    except Exception as exc:
        raise PassFailed(f"loading the model failed: {type(exc).__name__}: {exc}", where=f"{recipe.label}: model") from exc
    _check_returned(artifact, plan.source.produces, f"model source {plan.source_entry.name!r}", plan.source_entry.plugin.label)
    metrics = _measure(registry, artifact, ctx)
    artifact = artifact.evolve(
        metrics=metrics,
        history=(Step(None, f"source:{plan.source_entry.name}", plan.source_entry.plugin.label,
                      time.perf_counter() - started, metrics, artifact.details),),
    )
    source = artifact
    ctx.source = source

    for step in plan.steps:
        label = f"passes[{step.index}] {step.name}"
        notify(label, 0.0, label)
        ctx.report = lambda fraction, text, label=label: notify(label, fraction, text)
        started = time.perf_counter()
        try:
            result = step.instance.run(artifact, ctx)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log.debug("pass failed", exc_info=True)
            message = exc.problems[0].message if isinstance(exc, ShrinkError) else f"{type(exc).__name__}: {exc}"
            raise PassFailed(
                [Problem(f"{recipe.label}: {step.where}", f"failed: {message}",
                         f"plugin {step.entry.plugin.label}; passes already run: {_already_ran(artifact.history)}")]
            ) from exc
        _check_returned(result, step.instance.produces, f"pass {step.name!r}", step.entry.plugin.label)
        seconds = time.perf_counter() - started
        metrics = _measure(registry, result, ctx)
        record = Step(step.index, step.name, step.entry.plugin.label, seconds, metrics, result.details)
        artifact = result.evolve(metrics=metrics, history=artifact.history + (record,), details=result.details)
        notify(label, 1.0, f"{label} done in {seconds:.1f} s")
    return RunResult(source, artifact, ctx)


def _check_returned(result: Any, produces: str, who: str, plugin: str) -> None:
    where = f"plugin {plugin}"
    if not isinstance(result, Artifact):
        raise PluginError(f"{who} returned {type(result).__name__}, not a shrink Artifact", where=where,
                          hint="run() must return artifact.evolve(...) (a new Artifact)")
    if result.format != produces:
        raise PluginError(f"{who} declares produces={produces!r} but returned a {result.format!r} artifact", where=where)
