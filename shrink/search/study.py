"""`shrink search`: an Optuna study over a recipe's search spaces, each trial a real compile.

Trials run in this process and share the pass cache, so trials with the same passes and options up to a step reuse
its result (distil once, prune and quantize many ways). The study lives in a real database (SQLite in the output
folder, or any Optuna RDB URL) and resumes where it stopped; a trial that was cut off is run again, a finished one
never. Constraints are the compile's checks: a trial that fails one is infeasible and never on the front.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.api.recipe import Recipe
from shrink.errors import ShrinkError, UsageError
from shrink.plan import spaces as spaces_mod
from shrink.plan.spaces import Space
from shrink.search.objectives import Objective, violations
from shrink.support.files import sha256_file

if TYPE_CHECKING:
    import optuna

    from shrink.commands.results import CompileResult
    from shrink.host.registry import Registry

STUDY_NAME = "shrink-search"
STUDY_FILE = "study.db"

OnTrial = Callable[["TrialRecord", "Progress"], None]
Inner = Callable[[str, float, str], None]


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its values, figures, failed checks (or the error that stopped its compile), cache use."""

    number: int
    params: dict[str, Any]
    figures: dict[str, float | None]
    constraints: dict[str, float]
    failed: list[dict[str, Any]]
    error: str | None
    cached_steps: int
    steps: int
    seconds: float
    model_sha256: str | None
    baseline: bool = False
    node: str | None = None  # the Ray node that ran it (--ray-address)

    @property
    def feasible(self) -> bool:
        return self.error is None and all(v <= 0 for v in self.constraints.values())

    @property
    def violation(self) -> float:
        return float("inf") if self.error is not None else sum(v for v in self.constraints.values() if v > 0)

    def as_dict(self) -> dict[str, Any]:
        return {"trial": self.number, "params": self.params, "figures": self.figures, "feasible": self.feasible,
                "failed_checks": self.failed, "error": self.error, "cached_steps": self.cached_steps,
                "steps": self.steps, "seconds": self.seconds, "model_sha256": self.model_sha256,
                "baseline": self.baseline, "node": self.node}

    @classmethod
    def of(cls, number: int, params: dict[str, Any], attrs: Mapping[str, Any]) -> TrialRecord:
        """A record from what a trial stores (`score`'s outcome, `baseline`, `node`: its user attributes)."""
        return cls(number, dict(params), dict(attrs.get("figures", {})),
                   dict(attrs.get("constraints", {})), list(attrs.get("failed", [])), attrs.get("error"),
                   int(attrs.get("cached_steps", 0)), int(attrs.get("steps", 0)), float(attrs.get("seconds", 0.0)),
                   attrs.get("model_sha256"), bool(attrs.get("baseline", False)), attrs.get("node"))


@dataclass
class Progress:
    """Where the search stands, for the progress display: the finished trials of `total`."""

    total: int
    objectives: Sequence[Objective]
    records: list[TrialRecord] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.records)

    @property
    def feasible(self) -> int:
        return sum(1 for r in self.records if r.feasible)

    @property
    def best(self) -> TrialRecord | None:
        points = front(self.records, self.objectives)
        return points[0] if points else None


@dataclass(frozen=True)
class Searched:
    """A finished (or stopped) search: every trial, the front, the chosen trial and where the study lives."""

    records: list[TrialRecord]
    front: list[TrialRecord]
    best: TrialRecord | None
    storage: str
    seconds: float
    ran: int  # trials run by this call (the rest came from a resumed study)

    @classmethod
    def of(cls, records: list[TrialRecord], objectives: Sequence[Objective], storage: str, seconds: float,
           ran: int) -> Searched:
        points = front(records, objectives)
        return cls(records, points, points[0] if points else None, storage, round(seconds, 3), ran)


def storage_url(output: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(output / STUDY_FILE).resolve()}"


def _signature(recipe: Recipe, spaces: Sequence[Space], objectives: Sequence[Objective], target: str) -> str:
    """What a resumed study must have searched: the same spaces, objectives and target."""
    return json.dumps({"recipe": recipe.name, "target": target, "spaces": [s.as_dict() for s in spaces],
                       "objectives": [o.name for o in objectives]}, sort_keys=True)


def _difference(saved: Any, signature: str) -> str:
    """What a study's signature has that this run's does not, in words."""
    try:
        theirs = json.loads(str(saved))
    except ValueError:
        theirs = {}
    if not isinstance(theirs, dict):
        theirs = {}
    ours = json.loads(signature)
    shown = {"recipe": lambda v: repr(v), "target": lambda v: repr(v), "objectives": lambda v: ",".join(v or []),
             "spaces": lambda v: json.dumps(v, sort_keys=True)}
    parts = [f"{key} {shown[key](theirs.get(key))} (this run: {shown[key](ours.get(key))})"
             for key in ("recipe", "target", "objectives", "spaces") if theirs.get(key) != ours.get(key)]
    return "another search: " + "; ".join(parts) if parts else "another search"


def saved_objectives(url: str) -> list[str] | None:
    """The objectives the study at `url` searched (None: no study there, or none recorded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=url)
        names = json.loads(str(study.user_attrs["signature"]))["objectives"]
    except Exception:  # noqa: BLE001 - no study, another storage problem, an old signature: open_study says which
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def open_study(url: str, recipe: Recipe, spaces: Sequence[Space], objectives: Sequence[Objective], target: str,
               resume: bool, sampler: str, seed: int, trials: int, where: str) -> optuna.Study:
    """The study at `url`: created (refusing one that exists unless `resume`), or loaded and checked to be the same
    search; trials a killed process left running are marked failed, so they run again."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        existing = [s.study_name for s in optuna.study.get_all_study_summaries(storage=url)]
    except Exception as exc:  # noqa: BLE001 - any storage error (bad URL, unreachable server) is the user's to fix
        raise UsageError(f"cannot open the study storage {url}: {exc}", where=where) from None
    signature = _signature(recipe, spaces, objectives, target)
    if STUDY_NAME in existing and not resume:
        raise UsageError(f"{url} already holds a search study", where=where,
                         hint="add --resume to continue it, or choose another output folder")
    if STUDY_NAME not in existing and resume:
        raise UsageError(f"there is no study to resume in {url}", where=where, hint="run without --resume to start one")
    chosen = make_sampler(sampler, seed, trials)
    study = optuna.create_study(storage=url, study_name=STUDY_NAME, sampler=chosen, load_if_exists=resume,
                                directions=[o.direction for o in objectives])
    if resume:
        if study.user_attrs.get("signature") != signature:
            raise UsageError(f"the study in this folder searched {_difference(study.user_attrs.get('signature'), signature)}",
                             where=where, hint="resume with the same recipe, --target and --objective, or choose another folder")
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if trial.state == TrialState.RUNNING:
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # cut off: run it again
    else:
        study.set_user_attr("signature", signature)
    return study


def make_sampler(name: str, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """`auto` is TPE, for one objective or several (Optuna's multi-objective TPE): on the digits search, 30 trials of
    three objectives, it found a 6-point front and 100% at 11,404 B where NSGA-II, whose generations of 7 are little
    more than random sampling at this budget, found 4 points and 99.72% at 12,470 B (bench/search.py --sampler)."""
    import optuna

    if name in ("auto", "tpe"):
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(10, max(3, trials // 3)))
    if name == "nsga2":  # small generations: a 30-trial search still evolves a few times
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


def _plain(space: Space) -> bool:
    return all(c is None or isinstance(c, (bool, int, float, str)) for c in space.choices)


def decode(space: Space, value: Any) -> Any:
    """The option value of a parameter as the study stores it (choices of lists or objects are stored as JSON)."""
    return json.loads(str(value)) if space.kind == "choice" and not _plain(space) else value


def suggest(trial: optuna.Trial, space: Space) -> Any:
    """Sample `space` on `trial` (its parameter is named as the option's place in the recipe)."""
    if space.kind == "choice":
        if _plain(space):
            return trial.suggest_categorical(space.name, list(space.choices))
        return decode(space, trial.suggest_categorical(space.name, [json.dumps(c, sort_keys=True) for c in space.choices]))
    if space.kind == "int":
        return trial.suggest_int(space.name, int(space.low), int(space.high), step=int(space.step or 1), log=space.log)
    return trial.suggest_float(space.name, float(space.low), float(space.high), step=space.step, log=space.log)


def done_trials(study: optuna.Study, searched: Sequence[Space]) -> list[TrialRecord]:
    """Trials that finished: complete ones, and those whose compile stopped with an error (they are not repeated)."""
    from optuna.trial import TrialState

    return [TrialRecord.of(t.number, {s.name: decode(s, t.params[s.name]) for s in searched if s.name in t.params},
                           t.user_attrs)
            for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs)]


def run_trial(raw: Mapping[str, Any], recipe: Recipe, registry: Registry, target: str | None,
              workdir: Path, inner: Inner | None) -> tuple[CompileResult | None, str | None, float]:
    """Compile one trial's recipe into `workdir`; (result, None) or (None, the error that stopped it)."""
    from shrink.commands import recipes
    from shrink.plan.load import recipe_from_raw

    started = time.monotonic()
    loaded = recipe_from_raw(json.loads(json.dumps(raw)), recipe.path)
    try:
        from shrink.plan.planner import make_plan

        planned = make_plan(loaded, registry, target)
        result = recipes.run(planned, registry, output=workdir, progress=inner)
    except ShrinkError as exc:
        return None, "; ".join(p.line() for p in exc.problems), time.monotonic() - started
    return result, None, time.monotonic() - started


def score(result: CompileResult | None, error: str | None, seconds: float,
          objectives: Sequence[Objective]) -> dict[str, Any]:
    """A trial's outcome as plain JSON (figures, constraints, failed checks, cache use, the model's sha256, the error
    that stopped it): what a trial stores on the study, and what a Ray worker sends back."""
    figures: dict[str, float | None] = {}
    constraints: dict[str, float] = {}
    failed: list[dict[str, Any]] = []
    cached = steps = 0
    sha = None
    if result is not None:
        figures = {o.name: o.figure(result) for o in objectives}
        constraints = violations(result)
        failed = [{"check": c.name, "value": c.value, "limit": c.limit, "cause": c.cause} for c in result.failed]
        history = result.manifest.get("history", [])
        steps, cached = len(history), sum(1 for h in history if h.get("cached"))
        sha = sha256_file(result.model) if result.model.is_file() else None
        missing = [name for name, value in figures.items() if value is None]
        if missing:
            error = (f"the compile recorded no figure for objective {missing[0]!r} "
                     f"({next(o for o in objectives if o.name == missing[0]).description})")
    return {"figures": figures, "constraints": constraints, "failed": failed, "cached_steps": cached, "steps": steps,
            "seconds": round(seconds, 3), "model_sha256": sha, "error": error}


def store(trial: Any, scored: Mapping[str, Any], baseline: bool) -> None:
    """Put a scored outcome on an Optuna trial: user attributes, and the constraints as Optuna's own."""
    for key in ("figures", "constraints", "failed", "cached_steps", "steps", "seconds", "model_sha256"):
        trial.set_user_attr(key, scored[key])
    trial.set_user_attr("baseline", baseline)
    if scored.get("node"):
        trial.set_user_attr("node", scored["node"])
    if scored["error"] is not None:
        trial.set_user_attr("error", scored["error"])
    for name, value in scored["constraints"].items():
        trial.set_constraint(name, value)


def record_result(trial: optuna.Trial, params: dict[str, Any], result: CompileResult | None, error: str | None,
                  seconds: float, objectives: Sequence[Objective], baseline: bool) -> TrialRecord:
    """Score a trial's compile and store it on the trial."""
    scored = score(result, error, seconds, objectives)
    store(trial, scored, baseline)
    return TrialRecord.of(trial.number, params, {**scored, "baseline": baseline})


def front(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    """The feasible trials no other feasible trial dominates, ordered by the objectives (first one first)."""
    feasible = [r for r in records if r.feasible]

    def key(r: TrialRecord) -> tuple[float, ...]:
        return tuple(-float(r.figures[o.name]) if o.direction == "maximize" else float(r.figures[o.name])  # type: ignore[arg-type]
                     for o in objectives)

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        ka, kb = key(a), key(b)
        return all(x <= y for x, y in zip(ka, kb)) and ka != kb

    points = [r for r in feasible if not any(dominates(o, r) for o in feasible)]
    unique: dict[tuple[float, ...], TrialRecord] = {}
    for r in sorted(points, key=lambda r: (key(r), r.number)):
        unique.setdefault(key(r), r)  # equal figures: the earliest trial stands for them
    return list(unique.values())


def search(recipe: Recipe, searched: Sequence[Space], baseline: dict[str, Any] | None, registry: Registry,
           objectives: Sequence[Objective], *, target: str | None, target_name: str, trials: int, output: Path,
           storage: str | None, resume: bool, sampler: str, where: str, on_trial: OnTrial | None = None,
           inner: Inner | None = None, objectives_where: str = "objectives") -> Searched:
    """Run the study until it holds `trials` finished trials (a resumed study counts the ones it has). A trial that
    compiles but gives no figure for an objective stops the search (`UsageError`, naming `objectives_where`)."""
    import optuna

    url = storage_url(output, storage)
    study = open_study(url, recipe, searched, objectives, target_name, resume, sampler, recipe.seed, trials, where)
    if not resume and baseline is not None:
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    state = Progress(trials, objectives, done_trials(study, searched))
    started = time.monotonic()
    ran = 0
    scratch = output / "trials"
    with _interruptible() as stopped:
        while state.done < trials:
            if stopped.is_set():
                raise KeyboardInterrupt  # Ctrl-C landed where Python ignores exceptions (a finalizer): stop here
            ran += _one_trial(study, searched, recipe, registry, target, scratch, objectives, inner, state, on_trial)
            unscored = unscorable(state.records, objectives, objectives_where)
            if unscored is not None:  # every trial would fail alike: stop after one compile, not after all of them
                shutil.rmtree(scratch, ignore_errors=True)
                if not resume:  # no trial of this study could be scored: nothing worth resuming, start afresh
                    with contextlib.suppress(Exception):
                        optuna.delete_study(study_name=STUDY_NAME, storage=url)
                raise unscored
    shutil.rmtree(scratch, ignore_errors=True)
    return Searched.of(state.records, objectives, url, time.monotonic() - started, ran)


def unscorable(records: Sequence[TrialRecord], objectives: Sequence[Objective], where: str) -> UsageError | None:
    """The error when the latest trial compiled but recorded no figure for an objective that no trial so far has a
    figure for (the model or its data does not give one: no labels, outputs that are no class scores), or None. A
    figure one trial lacks and others have (a diverged trial's non-finite outputs) only fails that trial."""
    if not records or not records[-1].figures:
        return None  # no trial yet, or the latest compile itself stopped: that trial failed, others may not
    missing = [o for o in objectives if all(r.figures.get(o.name) is None for r in records)]
    if not missing:
        return None
    given = [o.name for o in objectives if o not in missing]
    return UsageError(f"trial {records[-1].number} compiled, but recorded no figure for objective {missing[0].name!r} "
                      f"({missing[0].description}), so no trial can be scored", where=where,
                      hint=f"search objectives this model records{': --objective ' + ','.join(given) if given else ''}")


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered, so the search stops at the next trial even
    when the interrupt hit a weakref callback or finalizer, where Python prints and drops it."""
    stopped = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def handler(signum: int, frame: Any) -> None:
        stopped.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGINT, previous)


def _one_trial(study: optuna.Study, searched: Sequence[Space], recipe: Recipe, registry: Registry, target: str | None,
               scratch: Path, objectives: Sequence[Objective], inner: Inner | None, state: Progress,
               on_trial: OnTrial | None) -> int:
    """Ask the study for a trial, compile it, tell the study its figures (or that it failed); 1 trial run."""
    from optuna.trial import TrialState

    trial = study.ask()
    is_baseline = bool(trial.user_attrs.get("baseline"))
    try:
        params = {space.name: suggest(trial, space) for space in searched}
        raw = spaces_mod.substitute(recipe.raw, list(searched), params)
        workdir = scratch / f"{trial.number:04d}"
        shutil.rmtree(workdir, ignore_errors=True)
        step = (lambda task, fraction, text: inner("trial", fraction, f"trial {trial.number}: {text}")) if inner else None
        result, error, seconds = run_trial(raw, recipe, registry, target, workdir, step)
        record = record_result(trial, params, result, error, seconds, objectives, is_baseline)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)  # cut off (Ctrl-C) or a bug: it runs again on --resume
        raise
    finally:
        shutil.rmtree(scratch / f"{trial.number:04d}", ignore_errors=True)
    if record.error is not None:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, [float(record.figures[o.name]) for o in objectives])  # type: ignore[arg-type]
    state.records.append(record)
    if on_trial is not None:
        on_trial(record, state)
    return 1

