"""What the commands return: typed results, and the one JSON object `--json` prints for each (`as_dict`).

A command that ran returns its result (a failed check is a result with verdict "fail", not an exception); a
command that could not run raises the `ShrinkError` family, whose JSON form is `error_dict`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shrink.api.checks import CheckResult
from shrink.errors import ChecksFailed, ExitCode, Problem, ShrinkError

if TYPE_CHECKING:
    from shrink.plan.planner import Plan

Verdict = Literal["pass", "fail", "error"]


def error_dict(code: int, problems: Sequence[Problem]) -> dict[str, Any]:
    """The `--json` object of a command that ended in an error."""
    return {"verdict": "error", "exit_code": int(code), "bundle": None, "checks": [],
            "errors": [p.as_dict() for p in problems]}


@dataclass(frozen=True, kw_only=True)
class Result:
    """A command's outcome: its verdict and exit code, the checks it ran and the bundle it wrote or read."""

    verdict: Verdict
    exit_code: ExitCode
    checks: tuple[CheckResult, ...] = ()
    errors: tuple[Problem, ...] = ()
    bundle: Path | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def raise_for_verdict(self) -> None:
        """Raise `ChecksFailed` (exit 4) naming each failed check when the verdict is not "pass"."""
        if not self.ok:
            raise ChecksFailed([Problem(c.name, c.cause or f"{c.value} exceeds the limit {c.limit} {c.unit}")
                                for c in self.failed] or [Problem("", f"verdict {self.verdict}")])

    def as_dict(self) -> dict[str, Any]:
        """The object `--json` prints."""
        return {"verdict": self.verdict, "exit_code": int(self.exit_code),
                "bundle": None if self.bundle is None else str(self.bundle),
                "checks": [c.as_dict() for c in self.checks], "errors": [p.as_dict() for p in self.errors],
                **self._extra()}

    def _extra(self) -> dict[str, Any]:
        return {}


def _verdict(checks: Sequence[CheckResult]) -> tuple[Verdict, ExitCode]:
    ok = all(c.ok for c in checks)
    return ("pass", ExitCode.OK) if ok else ("fail", ExitCode.CHECK_FAILED)


@dataclass(frozen=True, kw_only=True)
class PlanResult(Result):
    """`plan`: the recipe resolved and statically checked; nothing ran. `plan` is the planner's object."""

    plan: Plan = field(repr=False)

    @property
    def target(self) -> str:
        return self.plan.target.name

    @property
    def passes(self) -> list[str]:
        return [step.name for step in self.plan.steps]

    def describe(self) -> dict[str, Any]:
        return self.plan.describe()

    def _extra(self) -> dict[str, Any]:
        return {"plan": self.plan.describe()}

    @classmethod
    def of(cls, plan: Plan) -> PlanResult:
        return cls(verdict="pass", exit_code=ExitCode.OK, plan=plan)


@dataclass(frozen=True, kw_only=True)
class InitResult(PlanResult):
    """`init`: the starter recipe written to `recipe`, and its plan."""

    recipe: Path

    def _extra(self) -> dict[str, Any]:
        return {"recipe": str(self.recipe), **super()._extra()}


@dataclass(frozen=True, kw_only=True)
class CompileResult(Result):
    """`compile`: the bundle written (also when a check failed), every check, the final model's metrics and what
    its analysis could not compute (`findings`)."""

    target: str
    metrics: dict[str, Any] = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # what the passes warned about, each labelled with its step (also in the report)
    plan: Plan | None = field(default=None, repr=False, compare=False)

    @property
    def model(self) -> Path:
        """The deployable model file in the bundle."""
        assert self.bundle is not None
        return self.bundle / str(self.manifest.get("model", {}).get("file", "model.onnx"))

    @property
    def manifest(self) -> dict[str, Any]:
        """The bundle's manifest.json (versions, the resolved recipe and target, metrics after every pass, checks)."""
        assert self.bundle is not None
        return dict(json.loads((self.bundle / "manifest.json").read_text(encoding="utf-8")))

    def _extra(self) -> dict[str, Any]:
        return {"target": self.target, "metrics": self.metrics, "findings": list(self.findings),
                "warnings": list(self.warnings)}

    @classmethod
    def of(cls, bundle: Path, target: str, checks: Sequence[CheckResult], metrics: dict[str, Any],
           findings: Sequence[str], plan: Plan | None = None, warnings: Sequence[str] = ()) -> CompileResult:
        verdict, code = _verdict(checks)
        return cls(verdict=verdict, exit_code=code, bundle=bundle, checks=tuple(checks), target=target,
                   metrics=dict(metrics), findings=tuple(findings), warnings=tuple(warnings), plan=plan)


@dataclass(frozen=True, kw_only=True)
class VerifyResult(Result):
    """`verify`: a bundle's integrity and checks (or a bare model's) against `target`; `bundle` is None for a bare
    model, whose path is `model`."""

    target: str
    model: Path
    findings: tuple[str, ...] = ()
    data: Any = None  # with --data: the score on it (`shrink.bundle.scoring`), its `as_dict()` in the JSON

    def _extra(self) -> dict[str, Any]:
        extra = {"target": self.target, "findings": list(self.findings)}
        return {**extra, "data": self.data.as_dict()} if self.data is not None else extra

    @classmethod
    def of(cls, path: Path, bundle: bool, model: Path, target: str, checks: Sequence[CheckResult],
           findings: Sequence[str], data: Any = None) -> VerifyResult:
        verdict, code = _verdict(checks)
        return cls(verdict=verdict, exit_code=code, bundle=path if bundle else None, model=model, target=target,
                   checks=tuple(checks), findings=tuple(findings), data=data)


@dataclass(frozen=True, kw_only=True)
class SearchResult(Result):
    """`search`: every trial, the Pareto front of the feasible ones, the chosen trial (best on the first objective,
    ties by the next) and its plain recipe, the pass cache's hit rate over the trials, and whether `best.json`
    compiled again gave the trial's model. No feasible trial is verdict "fail" (exit 4) with the closest trial."""

    target: str
    output: Path
    objectives: tuple[dict[str, str], ...]
    trials: tuple[dict[str, Any], ...]
    front: tuple[dict[str, Any], ...]
    best: dict[str, Any] | None
    closest: dict[str, Any] | None
    hit_rate: float | None
    storage: str
    seconds: float
    ran: int
    reproduced: bool | None

    @property
    def feasible(self) -> int:
        return sum(1 for t in self.trials if t["feasible"])

    def _extra(self) -> dict[str, Any]:
        return {"target": self.target, "output": str(self.output), "objectives": list(self.objectives),
                "trials": list(self.trials), "feasible": self.feasible, "front": list(self.front), "best": self.best,
                "closest": self.closest, "hit_rate": self.hit_rate, "storage": self.storage, "seconds": self.seconds,
                "ran": self.ran, "reproduced": self.reproduced}

    @classmethod
    def of(cls, searched: Any, objectives: Sequence[Any], target: str, output: Path, bundle: Path | None,
           reproduced: bool | None, closest: Any, recipes: dict[int, Path]) -> SearchResult:
        steps = sum(r.steps for r in searched.records[-searched.ran:]) if searched.ran else 0
        cached = sum(r.cached_steps for r in searched.records[-searched.ran:]) if searched.ran else 0
        front = tuple({**r.as_dict(), "recipe": str(recipes[r.number])} for r in searched.front)
        best = None
        if searched.best is not None:
            best = {**searched.best.as_dict(), "recipe": str(output / "best.json")}
        errors: tuple[Problem, ...] = ()
        checks: tuple[CheckResult, ...] = ()
        if best is None:
            verdict, code = "fail", ExitCode.CHECK_FAILED
            if closest is not None:
                why = (closest.error or "; ".join(f"{f['check']}: {f['cause'] or f['value']}" for f in closest.failed))
                errors = (Problem("search", f"no trial is feasible; the closest is trial {closest.number}: {why}"),)
            else:
                errors = (Problem("search", "no trial finished"),)
        elif reproduced is False:
            verdict, code = "fail", ExitCode.CHECK_FAILED
            errors = (Problem("best.json", f"compiling it again did not give trial {searched.best.number}'s model "
                                           "(a pass is not deterministic)"),)
            checks = ()
        else:
            verdict, code = "pass", ExitCode.OK
        return cls(verdict=verdict, exit_code=code, bundle=bundle, checks=checks, errors=errors, target=target,
                   output=output, objectives=tuple({"name": o.name, "direction": o.direction} for o in objectives),
                   trials=tuple(r.as_dict() for r in searched.records), front=front, best=best,
                   closest=closest.as_dict() if closest is not None else None,
                   hit_rate=round(cached / steps, 4) if steps else None, storage=searched.storage,
                   seconds=searched.seconds, ran=searched.ran, reproduced=reproduced)


@dataclass(frozen=True, kw_only=True)
class InspectResult:
    """`inspect`: the static analysis of a model (`shrink.analysis.Analysis`), and the checks against `target` when
    one was given. Inspect reports and never gates, so it has no verdict."""

    model: Path
    model_bytes: int
    analysis: Any = field(repr=False)
    target: str | None = None
    checks: tuple[CheckResult, ...] = ()

    @property
    def findings(self) -> tuple[str, ...]:
        return (*(f"incomplete: {reason}" for reason in self.analysis.incomplete), *self.analysis.notes)

    def as_dict(self) -> dict[str, Any]:
        return {**self.analysis.as_dict(), "model": str(self.model), "model_bytes": self.model_bytes,
                "target": self.target, "checks": [c.as_dict() for c in self.checks]}


@dataclass(frozen=True)
class OptionInfo:
    """One option of a pass, from its generated JSON Schema: `name` is dotted for nested objects (`student.factory`)."""

    name: str
    type: str
    default: Any
    required: bool
    bounds: str
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "required": self.required,
                "bounds": self.bounds, "description": self.description}


@dataclass(frozen=True)
class PassInfo:
    """`passes NAME`: what a pass is, which formats it takes and gives, what it needs, and its options."""

    name: str
    plugin: str
    summary: str
    doc: str
    consumes: tuple[str, ...]
    produces: str
    requires: tuple[str, ...]
    default: bool
    options: tuple[OptionInfo, ...]
    schema: dict[str, Any] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "plugin": self.plugin, "summary": self.summary, "doc": self.doc,
                "consumes": list(self.consumes), "produces": self.produces, "requires": list(self.requires),
                "default": self.default, "options": [o.as_dict() for o in self.options], "schema": self.schema}


def error_of(exc: ShrinkError) -> dict[str, Any]:
    """The `--json` object of a `ShrinkError`."""
    return error_dict(exc.exit_code, exc.problems)
