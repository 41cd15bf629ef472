"""Run a `Plan`: load the source, run each pass in order, record metrics after each."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrink.engine import cache as cache_mod
from shrink.api.artifact import Artifact, Step
from shrink.support.files import dead_temporaries
from shrink.support.versions import library_versions
from shrink.engine.cache import PassCache
from shrink.api.context import Context, Dataset
from shrink.errors import PassFailed, PluginError, Problem, ShrinkError
from shrink.plan.planner import Plan
from shrink.host.registry import Registry

log = logging.getLogger("shrink.engine.run")

Progress = Callable[[str, float, str], None]  # (task, fraction done, text)


@dataclass
class RunResult:
    """The source and final artifacts. `key` is the final step's cache key (None without a cache);
    `ensure_data()` loads the recipe's data into `ctx.data` if a fully cached run skipped it."""

    source: Artifact
    final: Artifact
    ctx: Context
    key: str | None = None
    ensure_data: Callable[[], None] = lambda: None


WORKSPACE_PREFIX = "shrink-run-"


def clean_stale_workspaces() -> None:
    """Remove the workspaces of compiles that were killed (their process no longer exists)."""
    for path in dead_temporaries(Path(tempfile.gettempdir()), re.escape(WORKSPACE_PREFIX) + r"(?P<pid>\d+)-.*"):
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def workspace() -> Iterator[Path]:
    """A private temporary directory for the files passes write; always removed (and, after a
    SIGKILL, by the next compile)."""
    clean_stale_workspaces()
    path = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{os.getpid()}-"))
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


def _load_data(plan: Plan, ctx: Context, notify: Progress) -> None:
    if plan.data is None or ctx.data is not None:
        return
    notify("data", 0.0, f"loading data ({plan.data_entry.name if plan.data_entry else ''})")
    try:
        dataset = plan.data.load(ctx)
    except ShrinkError:
        raise
    except Exception as exc:
        raise PassFailed(f"loading data failed: {type(exc).__name__}: {exc}", where=f"{plan.recipe.label}: data") from exc
    if not isinstance(dataset, Dataset):
        raise PluginError(f"data source {plan.data.name!r} returned {type(dataset).__name__}, not a shrink Dataset",
                          where=f"plugin {plan.data_entry.plugin.label if plan.data_entry else '?'}")
    ctx.data = dataset


def _data_fingerprint(plan: Plan, ctx: Context, notify: Progress) -> str | None:
    """The provider's cheap fingerprint (without loading) when it has one, else the loaded data's."""
    if plan.data is None:
        return None
    quick = getattr(plan.data, "fingerprint", None)
    value = quick(ctx) if callable(quick) else None
    if value:
        return str(value)
    _load_data(plan, ctx, notify)
    return ctx.data.fingerprint if ctx.data is not None else None


def cache_components(plan: Plan, data: str | None) -> list[dict[str, Any]]:
    """What each step's result depends on: the source first, then one entry per pass (chained by key)."""
    import shrink

    shared = {"data": data, "data_code": cache_mod.code_hash(type(plan.data)) if plan.data else None,
              "seed": plan.recipe.seed, "target": plan.target.sha256,
              "libraries": cache_mod.digest(library_versions()), "shrink": cache_mod.code_hash(shrink)}
    resolve = plan.recipe.resolve_path
    source_options = plan.source.options.model_dump(mode="json")
    components = [{
        "step": f"source:{plan.source_entry.name}", "plugin": f"{plan.source_entry.plugin.dist} {plan.source_entry.plugin.version}",
        "code": cache_mod.code_hash(type(plan.source)), "options": source_options,
        "files": cache_mod.referenced_files(source_options, resolve), **shared,
    }]
    previous = PassCache.key(components[0])
    for step in plan.steps:
        options = step.instance.options.model_dump(mode="json")
        item = {"input": previous, "step": step.name, "plugin": f"{step.entry.plugin.dist} {step.entry.plugin.version}",
                "code": cache_mod.code_hash(type(step.instance)), "options": options,
                "files": cache_mod.referenced_files(options, resolve), **shared}
        components.append(item)
        previous = PassCache.key(item)
    return components


def _save_with(registry: Registry, artifact: Artifact, ctx: Context) -> Callable[[Path], dict[str, Any] | None]:
    def save(directory: Path) -> dict[str, Any] | None:
        descriptor = registry.save_artifact(artifact, directory, ctx)
        if descriptor is None:
            return None
        extra = {}
        for name, path in dict(artifact.meta.get("bundle_files") or {}).items():
            stored = f"bundle-{len(extra)}"
            shutil.copyfile(path, directory / stored)
            extra[name] = stored
        return {"model": descriptor, "bundle_files": extra}
    return save


def _store(cache: PassCache, registry: Registry, key: str, components: dict[str, Any], plan: Plan,
           artifact: Artifact, record: Step, ctx: Context) -> None:
    try:
        cache.put(key, {
            "recipe": plan.recipe.name, "step": "source" if record.index is None else f"passes[{record.index}]",
            "name": record.name, "plugin": record.plugin, "components": components, "format": artifact.format,
            "meta": cache_mod.jsonable(artifact.meta), "metrics": cache_mod.jsonable(record.metrics),
            "details": cache_mod.jsonable(record.details), "seconds": record.seconds,
        }, save=_save_with(registry, artifact, ctx))
    except ShrinkError:
        raise
    except Exception as exc:  # a plugin that cannot save costs a cache entry, never the compile
        log.warning("not cached: saving %s failed: %s: %s", record.name, type(exc).__name__, exc)


def _restore(registry: Registry, entry: cache_mod.Entry, ctx: Context) -> Artifact | None:
    saved = entry.record.get("saved")
    if not isinstance(saved, dict):
        return None
    meta = dict(entry.record.get("meta") or {})
    try:
        model = registry.load_artifact(entry.record["format"], saved["model"], entry.path, meta, ctx)
        if model is None:
            return None
        if saved.get("bundle_files"):
            files = {}
            for name, stored in saved["bundle_files"].items():
                files[name] = str(ctx.new_path("cached", Path(name).suffix))
                shutil.copyfile(entry.path / stored, files[name])
            meta["bundle_files"] = files
    except Exception as exc:  # noqa: BLE001 - a damaged or outdated entry means "run the step", never a failed compile
        log.debug("cache entry %s cannot be restored: %s: %s", entry.key[:12], type(exc).__name__, exc)
        return None
    return Artifact(model, entry.record["format"], meta=meta, details=entry.record.get("details") or {})


def _step_record(entry: cache_mod.Entry, index: int | None) -> Step:
    record = entry.record
    return Step(index, record["name"], record["plugin"], float(record.get("seconds", 0.0)),
                record.get("metrics") or {}, record.get("details") or {}, cached=True)


def run_plan(plan: Plan, registry: Registry, workdir: Path, progress: Progress | None = None,
             cache: PassCache | None = None) -> RunResult:
    """Execute `plan` inside `workdir`; a failing pass raises `PassFailed` (exit 5).

    With a `cache`, the longest cached prefix of source + passes is restored instead of run, and
    every step that runs is stored.
    """
    notify = progress or (lambda task, fraction, text: None)
    recipe = plan.recipe
    cache = cache or PassCache(enabled=False)
    ctx = Context(recipe=recipe, target=plan.target, data=None, workdir=workdir, seed=recipe.seed)

    keys: list[str] = []
    components: list[dict[str, Any]] = []
    hits: list[cache_mod.Entry] = []
    if cache.enabled:
        components = cache_components(plan, _data_fingerprint(plan, ctx, notify))
        keys = [PassCache.key(c) for c in components]
        for i, key in enumerate(keys):
            entry = cache.get(key)
            if entry is None:
                step = "source" if i == 0 else f"passes[{i - 1}]"
                if log.isEnabledFor(logging.DEBUG):  # explaining reads every entry of the cache
                    log.debug("cache miss for %s %s: %s", step, components[i]["step"],
                              cache.explain_miss(components[i], recipe.name, step))
                break
            hits.append(entry)

    # Resume after the last cached step whose model can be restored.
    artifact: Artifact | None = None
    source: Artifact | None = None
    resume = -1
    for i in range(len(hits) - 1, -1, -1):
        restored = _restore(registry, hits[i], ctx)
        if restored is not None:
            artifact, resume = restored, i
            break
    if artifact is not None:
        history = tuple(_step_record(e, None if i == 0 else i - 1) for i, e in enumerate(hits[:resume + 1]))
        artifact = dataclasses.replace(artifact, metrics=history[-1].metrics, history=history)
        for step in history:
            label = "source" if step.index is None else f"passes[{step.index}] {step.name}"
            notify(label, 1.0, f"{label}: cached")
        if resume == 0:
            source = artifact
        else:  # passes that still run get the real source model; a fully cached run needs only its metrics
            restored = _restore(registry, hits[0], ctx) if resume < len(plan.steps) else None
            source = restored or Artifact(None, hits[0].record["format"], meta=hits[0].record.get("meta") or {})
            source = dataclasses.replace(source, metrics=history[0].metrics, history=history[:1])

    if resume < len(plan.steps):
        _load_data(plan, ctx, notify)

    if artifact is None:
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
        record = Step(None, f"source:{plan.source_entry.name}", plan.source_entry.plugin.label,
                      time.perf_counter() - started, metrics, artifact.details)
        artifact = artifact.evolve(metrics=metrics, history=(record,))
        source = artifact
        resume = 0
        if keys:
            _store(cache, registry, keys[0], components[0], plan, artifact, record, ctx)
    assert source is not None
    ctx.source = source

    for step in plan.steps[resume:]:
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
        if keys:
            _store(cache, registry, keys[step.index + 1], components[step.index + 1], plan, artifact, record, ctx)
        notify(label, 1.0, f"{label} done in {seconds:.1f} s")
    return RunResult(source, artifact, ctx, keys[-1] if keys else None, lambda: _load_data(plan, ctx, notify))


def _check_returned(result: Any, produces: str, who: str, plugin: str) -> None:
    where = f"plugin {plugin}"
    if not isinstance(result, Artifact):
        raise PluginError(f"{who} returned {type(result).__name__}, not a shrink Artifact", where=where,
                          hint="run() must return artifact.evolve(...) (a new Artifact)")
    if result.format != produces:
        raise PluginError(f"{who} declares produces={produces!r} but returned a {result.format!r} artifact", where=where)
