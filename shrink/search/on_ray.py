"""Trials on a Ray cluster (`shrink search --ray-address ADDR`, the `ray` extra): Ray Tune runs the compiles, one CPU
each, and Optuna samples them through Ray's `OptunaSearch`, on the same study in the same database as an in-process
search, so `--resume` and the front work the same way.

Ray's `OptunaSearch` tells Optuna the objectives only; `_ConstrainedSearch` also stores each trial's constraints and
figures, so infeasible trials stay off the front and the sampler learns from them. Workers reach the pass cache
through the driver's cache folder (`$SHRINK_CACHE_DIR`): on a cluster of several machines it must be a shared path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.api.recipe import Recipe
from shrink.errors import UsageError
from shrink.plan import spaces as spaces_mod
from shrink.plan.spaces import Space
from shrink.search import study as studies
from shrink.search.objectives import OBJECTIVES, Objective

if TYPE_CHECKING:
    from shrink.search.study import OnTrial, Searched

RESULT_KEY = "shrink"  # the trial's scored outcome, as JSON, in the result a worker reports


def _trainable(config: dict[str, Any], fixed: dict[str, Any]) -> None:
    """One trial on a Ray worker: compile the recipe with the sampled values and report the scored outcome."""
    import ray
    from ray import tune

    os.environ["SHRINK_CACHE_DIR"] = fixed["cache"]
    from shrink.host.registry import Registry

    searched: list[Space] = fixed["spaces"]
    params = {space.name: studies.decode(space, config[space.name]) for space in searched}
    raw = spaces_mod.substitute(fixed["recipe"].raw, searched, params)
    workdir = Path(tempfile.mkdtemp(prefix="shrink-trial-"))
    try:
        result, error, seconds = studies.run_trial(raw, fixed["recipe"], Registry.load(), fixed["target"], workdir, None)
        scored = studies.score(result, error, seconds, [OBJECTIVES[name] for name in fixed["objectives"]])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    scored["node"] = ray.get_runtime_context().get_node_id()
    report: dict[str, Any] = {RESULT_KEY: json.dumps(scored)}
    if scored["error"] is None:
        report.update({name: float(value) for name, value in scored["figures"].items()})
    tune.report(report)


def _picklable(sampler: Any) -> Any:
    """Ray pickles the searcher with its sampler, and NSGA-II's sampler holds a lock: the same sampler, whose pickled
    state leaves the lock out and whose unpickled copy gets a new one."""
    lock = getattr(sampler, "_thread_lock", None)
    if lock is None:
        return sampler
    make = type(lock)

    def getstate(self: Any) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def setstate(self: Any, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = make()

    sampler.__class__ = type(type(sampler).__name__, (type(sampler),), {"__getstate__": getstate, "__setstate__": setstate})
    return sampler


def search(address: str, recipe: Recipe, searched: Sequence[Space], baseline: dict[str, Any] | None,
           objectives: Sequence[Objective], *, target: str | None, target_name: str, trials: int, output: Path,
           storage: str | None, resume: bool, sampler: str, where: str, on_trial: OnTrial | None = None,
           objectives_where: str = "objectives") -> Searched:
    """Run the study to `trials` finished trials on the Ray cluster at `address`; `UsageError` (naming
    `objectives_where`) when no finished trial has a figure for an objective."""
    import optuna

    try:
        import ray
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise UsageError("--ray-address needs Ray Tune, which is not installed", where="--ray-address",
                         hint="pip install 'shrink[ray]' (or pip install -e '.[ray]' in a checkout)") from None
    from shrink.engine.cache import default_root

    class _ConstrainedSearch(OptunaSearch):  # type: ignore[misc]
        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            trial = self._ot_trials.get(trial_id)
            scored = json.loads(result[RESULT_KEY]) if result and RESULT_KEY in result else None
            if trial is not None and scored is not None:
                studies.store(trial, scored, bool(trial.user_attrs.get("baseline")))
                if scored["error"] is not None:  # the compile stopped: a failed trial, not a number
                    result, error = None, True
            super().on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path: str) -> None:
            """Nothing: the study is in its database, and a search resumes from there (`--resume`)."""

        def restore(self, checkpoint_path: str) -> None:
            """Nothing: see `save`."""

    class _Progress(tune.Callback):  # type: ignore[misc]
        """Calls `on_trial` as trials finish. Ray pickles its callbacks with the experiment; the study and the
        display are not picklable and never needed again (a search resumes through the study), so they are dropped."""

        def __init__(self, watch: Any) -> None:
            self.watch = watch

        def __getstate__(self) -> dict[str, Any]:
            return {"watch": None}

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            if self.watch is not None:
                self.watch()

    def watch() -> None:
        records = studies.done_trials(study, searched)
        if records and on_trial is not None:
            on_trial(max(records, key=lambda r: r.number), studies.Progress(trials, objectives, records))

    url = studies.storage_url(output, storage)
    study = studies.open_study(url, recipe, searched, objectives, target_name, resume, sampler, recipe.seed, trials, where)
    before = studies.done_trials(study, searched)
    remaining = trials - len(before)
    started = time.monotonic()
    if remaining > 0:
        if not resume and baseline is not None:
            study.enqueue_trial(baseline, user_attrs={"baseline": True})
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False, ignore_reinit_error=True)
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds for an unreachable cluster
            raise UsageError(f"cannot connect to the Ray cluster at {address}: {exc}", where="--ray-address") from None

        def space(trial: Any) -> None:
            for item in searched:
                studies.suggest(trial, item)

        searcher = _ConstrainedSearch(
            space=space, metric=[o.name for o in objectives],
            mode=["max" if o.direction == "maximize" else "min" for o in objectives],
            sampler=_picklable(studies.make_sampler(sampler, recipe.seed, trials)),
            study_name=studies.STUDY_NAME, storage=optuna.storages.get_storage(url))
        fixed = {"recipe": recipe, "spaces": list(searched), "target": target, "objectives": [o.name for o in objectives],
                 "cache": str(default_root().resolve())}
        try:
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(_trainable, fixed=fixed), {"cpu": 1}),
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, reuse_actors=True),
                run_config=tune.RunConfig(name="shrink-search", storage_path=str((output / "ray").resolve()),
                                          verbose=0, callbacks=[_Progress(watch)]))
            tuner.fit()
        finally:
            ray.shutdown()  # the driver's connection only: the cluster keeps running
    records = studies.done_trials(study, searched)
    scored = [r for r in records if r.figures]  # trials whose compile finished
    unscored = studies.unscorable(scored, objectives, objectives_where)
    if unscored is not None:  # the workers ran every trial (Ray Tune has no stop here): say why none could be scored
        raise unscored
    return studies.Searched.of(records, objectives, url, time.monotonic() - started, len(records) - len(before))
