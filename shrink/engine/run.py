"""Run a `Plan`: load the source, run each pass in order, record metrics after each.

The engine is the one owner of running passes: it restores the longest cached prefix of the plan and
stores every step it runs (and the golden I/O of the final model), measures every artifact through its
family, and enforces the pass contract on every run: the returned artifact's type and format, a
registered family, and no mutation of the input artifact's model (compared by the family's
fingerprint before and after the pass).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shrink.api.artifact import Artifact, Step
from shrink.api.context import Context, ModelFamily
from shrink.api.data import Dataset, labelled_eval
from shrink.bundle import golden
from shrink.engine import keys
from shrink.engine.cache import DamagedEntry, Entry, PassCache
from shrink.errors import CacheError, PassFailed, PluginError, Problem, ShrinkError, UsageError
from shrink.host.registry import Registry
from shrink.plan.planner import Plan
from shrink.support import ranks
from shrink.support.files import dead_temporaries
from shrink.support.jsonio import jsonable

log = logging.getLogger("shrink.engine")

Progress = Callable[[str, float, str], None]  # (task, fraction done, text)
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


def damaged(cache: PassCache, step: str, damage: DamagedEntry) -> None:
    """A cache entry failed its check: a warning (the step is recomputed and the entry replaced), or with
    `cache.strict` (`--strict-cache`) a `CacheError`."""
    where = f"pass cache, {step}"
    message = f"{damage.file} {damage.reason} (entry {damage.path})"
    if cache.strict:
        raise CacheError(message, where=where, hint="`shrink cache verify` lists every damaged entry; without "
                                                    "--strict-cache the step is recomputed and the entry replaced")
    log.warning("%s: %s; recomputing the step and replacing the entry", where, message)


@dataclass
class RunResult:
    """The source and final artifacts of a run, its context, and what the pass cache knows of it."""

    source: Artifact
    final: Artifact
    ctx: Context
    plan: Plan
    cache: PassCache
    key: str | None = None  # the final step's cache key (None without a cache)
    _load_data: Callable[[], None] = field(default=lambda: None, repr=False)
    keys: list[str] = field(default_factory=list)  # every step's cache key, source first
    from_cache: list[dict[str, Any]] = field(default_factory=list)  # what was loaded from the cache (manifest)

    def ensure_data(self) -> None:
        """Load the recipe's data into `ctx.data` (a fully cached run skips it)."""
        self._load_data()

    def golden_key(self) -> str | None:
        if not self.key:
            return None
        return PassCache.key({"final": self.key, "golden": golden.GOLDEN_FILE, "code": keys.code_hash(golden)})

    def golden(self) -> tuple[bytes, dict[str, Any]] | None:
        """The golden file and its manifest record for the final model, from the pass cache when the final
        model was cached (the golden code is part of the key)."""
        key = self.golden_key()
        try:
            entry = self.cache.get(key) if key else None
            if key and entry is not None and "reference" in entry.record:
                reference = entry.record["reference"]
                data = self.cache.read(entry, golden.GOLDEN_FILE) if reference is not None else b""
                if data is not None:  # None: the entry was removed meanwhile
                    loaded = {"entry.json": entry.sha256}
                    if reference is not None:
                        loaded[golden.GOLDEN_FILE] = hashlib.sha256(data).hexdigest()
                    self.from_cache.append({"step": "golden", "name": "golden", "key": key, "loaded": loaded})
                    return (data, reference) if reference is not None else None
        except DamagedEntry as damage:
            damaged(self.cache, "golden", damage)
        self.ensure_data()
        try:
            reference = golden.make(Path(self.final.model), list(self.final.meta.get("inputs", [])), self.ctx.data,
                                    self.plan.recipe.seed)
        except ShrinkError:
            raise
        except Exception as exc:  # an error, never a traceback (exit 1): the final model could not run the samples
            log.debug("golden I/O failed", exc_info=True)
            raise PluginError(f"running the final {self.final.format} model on the golden inputs failed: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
        if key and ranks.is_writer():
            self.cache.put(key, {"recipe": self.plan.recipe.name, "step": "golden", "name": "golden",
                                 "reference": reference and reference[1]},
                           files={golden.GOLDEN_FILE: reference[0]} if reference else None)
        return reference

    def mark_used(self) -> None:
        """Mark every entry this run used or stored as used now (least recently used entries are pruned first)."""
        self.cache.touch([*self.keys, self.golden_key()])


CHANCE_MARGIN = 0.02  # a source model this close to chance accuracy has untrained weights


def untrained(plan: Plan, data: Dataset | None, source: Artifact) -> str | None:
    """Why the source model looks untrained (eval accuracy within 2 points of chance: the larger of 1/classes and
    the most frequent class), or None; a source option `allow_random_weights: true` accepts it."""
    accuracy = source.metrics.get("accuracy")
    split = labelled_eval(data)
    if accuracy is None or split is None or getattr(plan.source.options, "allow_random_weights", False):
        return None
    _, counts = np.unique(np.asarray(split.labels), return_counts=True)
    classes = max(len((data.meta.get("classes") if data else None) or []), len(counts), 1)
    chance = max(1 / classes, float(counts.max()) / max(len(split), 1) if len(counts) else 0.0)
    if float(accuracy) > chance + CHANCE_MARGIN:
        return None
    return (f"the source model scores {float(accuracy):.1%} on the eval split, within {CHANCE_MARGIN:.0%} of chance "
            f"({chance:.1%} for {classes} classes): its weights look untrained")


def _already_ran(history: tuple[Step, ...]) -> str:
    ran = [f"passes[{s.index}] {s.name}" for s in history if s.index is not None]
    return ", ".join(ran) if ran else "none"


class _Run:
    """One execution of a plan: its context, the cache entries it found, and the steps it runs."""

    def __init__(self, plan: Plan, registry: Registry, workdir: Path, notify: Progress, cache: PassCache) -> None:
        self.plan = plan
        self.registry = registry
        self.notify = notify
        self.cache = cache
        self.ctx = Context(recipe=plan.recipe, target=plan.target, data=None, workdir=workdir, seed=plan.recipe.seed,
                           families=registry.families(), shapes=plan.shapes, inputs=plan.inputs)
        self.keys: list[str] = []
        self.components: list[dict[str, Any]] = []
        self.loaded: dict[str, dict[str, str]] = {}  # key -> sha256 of each file loaded from that entry
        self.from_cache: list[dict[str, Any]] = []

    # data ---------------------------------------------------------------------------------------

    def load_data(self) -> None:
        plan, ctx = self.plan, self.ctx
        if plan.data is None or ctx.data is not None:
            return
        self.notify("data", 0.0, f"loading data ({plan.data_entry.name if plan.data_entry else ''})")
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

    def data_fingerprint(self) -> str | None:
        """The provider's cheap fingerprint (without loading) when it has one, else the loaded data's."""
        if self.plan.data is None:
            return None
        quick = self.plan.data.fingerprint(self.ctx)
        if quick:
            return str(quick)
        self.load_data()
        return self.ctx.data.fingerprint if self.ctx.data is not None else None

    # families -------------------------------------------------------------------------------------

    def family(self, artifact: Artifact, who: str, plugin: str) -> ModelFamily:
        family = self.ctx.families.get(artifact.family)
        if family is None:
            raise PluginError(f"{who} returned an artifact of model family {artifact.family!r}, which no plugin registers",
                              where=f"plugin {plugin}")
        return family

    def measure(self, artifact: Artifact) -> dict[str, Any]:
        try:
            metrics = dict(self.ctx.family(artifact).measure(artifact, self.ctx))
            metrics.update(self.registry.extra_metrics(artifact, self.ctx))
            return metrics
        except ShrinkError as exc:
            original = artifact.meta.get("source_file")  # name the user's file, not the private copy
            if original and isinstance(artifact.model, str):
                raise type(exc)([dataclasses.replace(p, where=p.where.replace(artifact.model, original),
                                                     message=p.message.replace(artifact.model, original))
                                 for p in exc.problems]) from None
            raise
        except Exception as exc:
            log.debug("measuring failed", exc_info=True)
            raise PluginError(f"measuring the {artifact.format} artifact failed: {type(exc).__name__}: {exc}") from exc

    # the pass cache -------------------------------------------------------------------------------

    def lookup(self) -> list[Entry]:
        """The cache entries of the longest cached prefix of source + passes."""
        if not self.cache.enabled:
            return []
        scans = self.cache.base / "import-scans.json"
        keys.load_import_scans(scans)
        self.components = keys.components(self.plan, self.data_fingerprint())
        if ranks.is_writer():
            keys.save_import_scans(scans)
        self.keys = [PassCache.key(c) for c in self.components]
        hits = []
        for i, key in enumerate(self.keys):
            try:
                entry = self.cache.get(key)
            except DamagedEntry as damage:
                damaged(self.cache, self.label(i), damage)
                break
            if entry is None:
                if log.isEnabledFor(logging.DEBUG):  # explaining reads every entry of the cache
                    step = "source" if i == 0 else f"passes[{i - 1}]"
                    log.debug("cache miss for %s %s: %s", step, self.components[i]["step"],
                              self.cache.explain_miss(self.components[i], self.plan.recipe.name, step))
                break
            hits.append(entry)
        return hits

    def label(self, position: int) -> str:
        """`source torch` or `passes[2] fuse.bn`: the step at `position` of the chain (0 is the source)."""
        name = self.components[position]["step"] if position < len(self.components) else "?"
        return f"source {name.removeprefix('source:')}" if position == 0 else f"passes[{position - 1}] {name}"

    def store(self, position: int, artifact: Artifact, record: Step) -> None:
        if not self.keys or not ranks.is_writer():  # under torchrun, rank 0 alone writes the cache
            return
        family = self.ctx.family(artifact)

        def save(directory: Path) -> dict[str, Any] | None:
            descriptor = family.save(artifact, directory, self.ctx)
            if descriptor is None:
                return None
            extra = {}
            for name, path in dict(artifact.meta.get("bundle_files") or {}).items():
                stored = f"bundle-{len(extra)}"
                shutil.copyfile(path, directory / stored)
                extra[name] = stored
            return {"model": descriptor, "bundle_files": extra}

        try:
            self.cache.put(self.keys[position], {
                "recipe": self.plan.recipe.name, "step": "source" if record.index is None else f"passes[{record.index}]",
                "name": record.name, "plugin": record.plugin, "components": self.components[position],
                "format": artifact.format, "family": artifact.family, "meta": jsonable(artifact.meta),
                "metrics": jsonable(record.metrics), "details": jsonable(record.details), "seconds": record.seconds,
            }, save=save)
        except ShrinkError:
            raise
        except Exception as exc:  # a family that cannot save costs a cache entry, never the compile
            log.warning("not cached: saving %s failed: %s: %s", record.name, type(exc).__name__, exc)

    def restore(self, position: int, entry: Entry) -> Artifact | None:
        """The model of the entry at `position` of the chain, loaded by its family after every file of the
        entry matched its recorded sha256; None when it cannot be restored (the step then reruns)."""
        saved = entry.record.get("saved")
        if not isinstance(saved, dict):
            return None
        try:
            verified = self.cache.verify(entry)
            if verified is None:
                log.debug("cache entry %s was removed while being read", entry.key[:12])
                return None
            meta = dict(entry.record.get("meta") or {})
            name = str(entry.record.get("family") or "")
            family = self.ctx.families.get(name, ModelFamily())
            bundle_files = {file_name: entry.file(stored) for file_name, stored in (saved.get("bundle_files") or {}).items()}
        except DamagedEntry as damage:
            damaged(self.cache, self.label(position), damage)
            return None
        try:
            model = family.load(entry.record["format"], saved["model"], entry.path, meta, self.ctx)
            if model is None:
                return None
            if bundle_files:
                files = {}
                for file_name, path in bundle_files.items():
                    files[file_name] = str(self.ctx.new_path("cached", Path(file_name).suffix))
                    shutil.copyfile(path, files[file_name])
                meta["bundle_files"] = files
        except Exception as exc:  # noqa: BLE001 - an outdated entry, or one removed meanwhile, means "run the step"
            log.debug("cache entry %s cannot be restored: %s: %s", entry.key[:12], type(exc).__name__, exc)
            return None
        self.loaded[entry.key] = verified
        return Artifact(model, entry.record["format"], meta=meta, details=entry.record.get("details") or {}, family=name)

    # running ----------------------------------------------------------------------------------------

    def resume(self, hits: list[Entry]) -> tuple[Artifact | None, Artifact | None, int]:
        """(artifact, source, index of its step) after the last cached step whose model can be restored."""
        for i in range(len(hits) - 1, -1, -1):
            restored = self.restore(i, hits[i])
            if restored is None:
                continue
            history = tuple(_step_record(e, None if j == 0 else j - 1) for j, e in enumerate(hits[:i + 1]))
            artifact = dataclasses.replace(restored, metrics=history[-1].metrics, history=history)
            if i == 0:
                source = artifact
            elif i < len(self.plan.steps):  # passes that still run get the real source model
                source = self.restore(0, hits[0])
                if source is None:
                    self.load_data()
                    source = self.load_source()
                source = dataclasses.replace(source, metrics=history[0].metrics, history=history[:1])
            else:  # a fully cached run needs only the source's metrics
                source = Artifact(None, hits[0].record["format"], meta=hits[0].record.get("meta") or {},
                                  family=str(hits[0].record.get("family") or ""), metrics=history[0].metrics,
                                  history=history[:1])
            for step in history:
                label = "source" if step.index is None else f"passes[{step.index}] {step.name}"
                self.notify(label, 1.0, f"{label}: cached")
            self.from_cache = [{"step": "source" if j == 0 else f"passes[{j - 1}]", "name": entry.record.get("name"),
                                "key": entry.key, "loaded": self.loaded.get(entry.key, {"entry.json": entry.sha256})}
                               for j, entry in enumerate(hits[:i + 1])]
            return artifact, source, i
        return None, None, -1

    def load_source(self) -> Artifact:
        plan = self.plan
        entry = plan.source_entry
        self.notify("source", 0.0, f"loading model ({entry.name})")
        started = time.perf_counter()
        try:
            artifact = plan.source.load(self.ctx)
        except ShrinkError:
            raise
        except Exception as exc:
            raise PassFailed(f"loading the model failed: {type(exc).__name__}: {exc}", where=f"{plan.recipe.label}: model") from exc
        _check_returned(artifact, plan.source.produces, f"model source {entry.name!r}", entry.plugin.label)
        if not artifact.family:
            artifact = dataclasses.replace(artifact, family=plan.family.name)
        self.family(artifact, f"model source {entry.name!r}", entry.plugin.label)
        try:
            metrics = self.measure(artifact)
        except PluginError as exc:
            # the user's own model rejecting the user's own samples (token ids past its vocabulary) is bad input
            cause = exc.__cause__
            if self.ctx.data is None or type(cause).__name__ != "InvalidArgument":
                raise
            raise UsageError(f"the model rejects the data's samples: {str(cause).splitlines()[0]}",
                             where=f"{plan.recipe.label}: data",
                             hint="the data must fit the model's inputs (token ids within its vocabulary, the "
                                  "values and shapes it was exported for)") from None
        record = Step(None, f"source:{entry.name}", entry.plugin.label, time.perf_counter() - started, metrics, artifact.details)
        artifact = artifact.evolve(metrics=metrics, history=(record,))
        self.store(0, artifact, record)
        return artifact

    def run_step(self, step: Any, artifact: Artifact) -> Artifact:
        label = f"passes[{step.index}] {step.name}"
        plugin = step.entry.plugin.label
        self.notify(label, 0.0, label)
        self.ctx.report = lambda fraction, text: self.notify(label, fraction, text)
        watched = [a for a in (artifact, self.ctx.source) if a is not None and a.model is not None]
        before = [self.ctx.family(a).fingerprint(a) for a in watched]
        started = time.perf_counter()
        try:
            result = step.instance.run(artifact, self.ctx)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log.debug("pass failed", exc_info=True)
            message = exc.problems[0].message if isinstance(exc, ShrinkError) else f"{type(exc).__name__}: {exc}"
            raise PassFailed(
                [Problem(f"{self.plan.recipe.label}: {step.where}", f"failed: {message}",
                         f"plugin {plugin}; passes already run: {_already_ran(artifact.history)}")]
            ) from exc
        seconds = time.perf_counter() - started
        _check_returned(result, step.instance.produces, f"pass {step.name!r}", plugin)
        for watched_artifact, fingerprint in zip(watched, before):
            if fingerprint is not None and self.ctx.family(watched_artifact).fingerprint(watched_artifact) != fingerprint:
                what = "its input model" if watched_artifact is artifact else "the source model"
                raise PluginError(f"pass {step.name!r} modified {what} in place; a pass must leave its input unchanged "
                                  "and return a new model (copy it first)", where=f"plugin {plugin}")
        self.family(result, f"pass {step.name!r}", plugin)
        metrics = self.measure(result)
        record = Step(step.index, step.name, plugin, seconds, metrics, result.details)
        result = result.evolve(metrics=metrics, history=artifact.history + (record,), details=result.details)
        self.store(step.index + 1, result, record)
        self.notify(label, 1.0, f"{label} done in {seconds:.1f} s")
        return result


def run_plan(plan: Plan, registry: Registry, workdir: Path, progress: Progress | None = None,
             cache: PassCache | None = None) -> RunResult:
    """Execute `plan` inside `workdir`; a failing pass raises `PassFailed` (exit 5), a broken contract
    `PluginError` (exit 3). With an enabled `cache`, the longest cached prefix of source + passes is
    restored instead of run, and every step that runs is stored."""
    run = _Run(plan, registry, workdir, progress or (lambda task, fraction, text: None), cache or PassCache(enabled=False))
    artifact, source, done = run.resume(run.lookup())
    if done < len(plan.steps):
        run.load_data()
    if artifact is None:
        artifact = source = run.load_source()
        done = 0
    assert source is not None
    if done < len(plan.steps):
        why = untrained(plan, run.ctx.data, source)
        if why:
            raise UsageError(why, where=f"{plan.recipe.label}: model",
                             hint="load trained weights (e.g. model.weights), or set model.allow_random_weights: true "
                                  "to compile it anyway")
    run.ctx.source = source
    for step in plan.steps[done:]:
        artifact = run.run_step(step, artifact)
    return RunResult(source, artifact, run.ctx, plan, run.cache, run.keys[-1] if run.keys else None, run.load_data,
                     list(run.keys), list(run.from_cache))


def _step_record(entry: Entry, index: int | None) -> Step:
    record = entry.record
    return Step(index, record["name"], record["plugin"], float(record.get("seconds", 0.0)),
                record.get("metrics") or {}, record.get("details") or {}, cached=True)


def _check_returned(result: Any, produces: str, who: str, plugin: str) -> None:
    where = f"plugin {plugin}"
    if not isinstance(result, Artifact):
        raise PluginError(f"{who} returned {type(result).__name__}, not a shrink Artifact", where=where,
                          hint="run() must return artifact.evolve(...) (a new Artifact)")
    if result.format != produces:
        raise PluginError(f"{who} declares produces={produces!r} but returned a {result.format!r} artifact", where=where)
