"""`search` as a Python function: what `shrink search` runs.

    import shrink
    result = shrink.search("recipes/digits-cnn.json", target="cortex-a53", trials=30, output="dist/search")
    result.best["recipe"], [t["figures"] for t in result.front], result.hit_rate

A recipe's `$search` spaces (or, without any, the spaces its passes declare) are explored by an Optuna study whose
trials are real compiles sharing the pass cache; the checks are constraints. The output folder holds the study
(`study.db`), the report (`search.md`, `front.png`), `best.json` (a plain recipe) and `best/`, its bundle compiled
again from `best.json` (from the cache) with the model's sha256 compared to the trial's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shrink.commands import arguments
from shrink.commands.arguments import RecipeLike
from shrink.commands.results import SearchResult
from shrink.errors import RecipeError, UsageError

if TYPE_CHECKING:
    from shrink.host.registry import Registry
    from shrink.search.study import OnTrial

SAMPLERS = ("auto", "tpe", "nsga2", "random")


def spaces_of(loaded: Any, registry: Registry) -> tuple[list[Any], dict[str, Any] | None]:
    """The recipe's spaces (its `$search`, or the ones its passes declare) and, for declared spaces, the values the
    recipe gives them (the first trial); every problem raised together as a `RecipeError`."""
    from shrink.plan import spaces

    found, problems = spaces.find(loaded.raw, loaded.label)
    baseline = None
    if not found and not problems:
        found = spaces.declared(loaded.raw, registry)
        if not found:
            raise RecipeError("the recipe has no search space, and none of its passes declares one", where=loaded.label,
                              hint='give an option a space: "ratio": {"$search": {"float": [0.1, 0.7]}}')
        baseline = spaces.given(loaded.raw, found, registry)
    problems += spaces.validate(loaded.raw, found, registry, loaded.label)
    if problems:
        raise RecipeError(problems)
    return found, baseline


def search(recipe: RecipeLike, *, target: str | None = None, trials: int = 30,
           objectives: str | Iterable[str] | None = None, output: str | os.PathLike[str] | None = None,
           storage: str | None = None, resume: bool = False, sampler: str = "auto",
           budgets: Mapping[str, Any] | None = None, base_dir: str | os.PathLike[str] | None = None,
           registry: Registry | None = None, ray_address: str | None = None, on_trial: OnTrial | None = None,
           progress: Callable[[str, float, str], None] | None = None,
           where: Mapping[str, str] | None = None) -> SearchResult:
    """Search `recipe`'s spaces for `trials` trials (a resumed study counts the trials it has).

    `objectives`: names from accuracy, size, loss, latency, macs, ram (default accuracy, size, loss, or with `resume`
    the study's; the first one chooses the best trial, the next ones break its ties); `output`: the folder for
    the study and the results (default `dist/<name>-<target>-search/`); `storage`: an Optuna RDB URL instead of
    `output/study.db`; `resume`: continue the study there; `sampler`: auto (TPE, for one objective or several),
    tpe, nsga2 or random; `ray_address`: run the trials on that Ray cluster (Ray Tune, the `ray` extra), one CPU each,
    sharing `$SHRINK_CACHE_DIR` (a shared path on a cluster of several machines). Raises `RecipeError` (exit 2) for
    bad spaces; no feasible trial is verdict "fail" (exit 4)."""
    from shrink.plan import spaces
    from shrink.plan.load import recipe_from_raw
    from shrink.plan.planner import make_plan
    from shrink.search import objectives as objectives_mod
    from shrink.search import study

    labels = {"target": "target", "trials": "trials", "objectives": "objectives", "output": "output",
              "sampler": "sampler", "storage": "storage", **(where or {})}
    reg = arguments.registry(registry)
    chosen = objectives_mod.objectives(objectives, labels["objectives"])
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise UsageError(f"{trials!r} is not a positive number of trials", where=labels["trials"])
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {sampler!r}", where=labels["sampler"], hint=f"choose from {', '.join(SAMPLERS)}")
    loaded = arguments.recipe(recipe, budgets, base_dir)
    found, baseline = spaces_of(loaded, reg)
    # the first value of every space: what plan-time checks see (a bad source, data or target fails here, once)
    planned = make_plan(recipe_from_raw(spaces.substitute(loaded.raw, found, {}), loaded.path), reg, target,
                        target_where=labels["target"])
    folder = Path(output) if output is not None else Path("dist") / f"{loaded.name}-{planned.target.name}-search"
    if resume and storage is None and not (folder / study.STUDY_FILE).is_file():  # before anything is created
        raise UsageError(f"there is no study to resume in {folder}", where=labels["output"],
                         hint="run without --resume to start one")
    if resume and objectives is None:  # the objectives the study was started with, not today's defaults
        chosen = objectives_mod.objectives(study.saved_objectives(study.storage_url(folder, storage)), labels["objectives"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror or exc}", where=labels["output"]) from None
    place = labels["storage"] if storage else labels["output"]
    if ray_address:
        from shrink.search import on_ray

        searched = on_ray.search(ray_address, loaded, found, baseline, chosen, target=target,
                                 target_name=planned.target.name, trials=trials, output=folder, storage=storage,
                                 resume=resume, sampler=sampler, where=place, on_trial=on_trial,
                                 objectives_where=labels["objectives"])
    else:
        searched = study.search(loaded, found, baseline, reg, chosen, target=target, target_name=planned.target.name,
                                trials=trials, output=folder, storage=storage, resume=resume, sampler=sampler,
                                where=place, on_trial=on_trial, inner=progress, objectives_where=labels["objectives"])
    return _finish(loaded, found, searched, chosen, reg, target, planned.target.name, folder)


def _finish(loaded: Any, found: list[Any], searched: Any, chosen: Any, registry: Registry, target: str | None,
            target_name: str, folder: Path) -> SearchResult:
    """Write best.json, the front's recipes and the report; compile best.json again into `best/`."""
    from shrink.commands import recipes
    from shrink.plan import spaces
    from shrink.report import search_report
    from shrink.search.recipes import rebased
    from shrink.support.files import sha256_file

    if target is not None:  # the searched target (--target) becomes the recipe's, a profile file by its path
        profile = Path(target).expanduser()
        given = dict(loaded.raw, target=str(profile.resolve()) if profile.suffix == ".json" and profile.is_file() else target)
        loaded = dataclasses.replace(loaded, raw=given)
    written: dict[int, Path] = {}
    (folder / "front").mkdir(exist_ok=True)
    for record in searched.front:
        raw = rebased(spaces.substitute(loaded.raw, found, record.params), loaded, folder / "front")
        path = folder / "front" / f"trial-{record.number:04d}.json"
        _write_json(path, raw)
        written[record.number] = path
    reproduced = None
    bundle = None
    if searched.best is not None:
        best = searched.best
        raw = rebased(spaces.substitute(loaded.raw, found, best.params), loaded, folder)
        raw["description"] = (f"{loaded.raw.get('description', loaded.name)} (shrink search: trial {best.number} of "
                              f"{len(searched.records)})")
        _write_json(folder / "best.json", raw)
        # best.json stands alone: compiled without --target, it targets what was searched
        again = recipes.compile(folder / "best.json", output=folder / "best", registry=registry)
        bundle = again.bundle
        reproduced = sha256_file(again.model) == best.model_sha256
    closest = None
    if searched.best is None and searched.records:
        closest = min(searched.records, key=lambda r: (r.violation, r.number))
    result = SearchResult.of(searched, chosen, target_name, folder, bundle, reproduced, closest, written)
    search_report.write(folder, loaded.name, target_name, found, chosen, searched, result)
    _write_json(folder / "search.json", result.as_dict())
    return result


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
