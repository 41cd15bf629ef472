"""Checks of a final model against its target and the recipe's budget.

Every check yields results of one shape, used everywhere (manifest, `--json`, report):
`{name, ok, limit, value, unit, cause}`. Gates use deterministic figures only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from shrink.targets import Target


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    limit: float | int | str | None
    value: float | int | str | None
    unit: str
    cause: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Subject:
    """What checks look at: the final model file, its target, the budget and the recorded metrics."""

    model_path: Path
    target: Target
    budget: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # final metrics
    source_metrics: dict[str, Any] = field(default_factory=dict)  # metrics of the source model

    @property
    def model_bytes(self) -> int:
        return self.model_path.stat().st_size


class Check:
    """A constraint checker; `run(subject)` returns results (empty when it does not apply)."""

    name: ClassVar[str]

    def run(self, subject: Subject) -> list[CheckResult]:
        raise NotImplementedError


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class StorageCheck(Check):
    """Model file plus the runtime's storage overhead against the target's storage (less reserved)."""

    name = "storage"

    def run(self, subject: Subject) -> list[CheckResult]:
        storage = subject.target.get("storage")
        if not storage:
            return []
        overhead = int(subject.target.get("runtime", "storage_overhead_bytes", default=0))
        limit = int(storage["bytes"]) - int(storage.get("reserved_bytes", 0))
        value = subject.model_bytes + overhead
        ok = value <= limit
        cause = None if ok else (
            f"model file {_fmt_bytes(subject.model_bytes)} + runtime {_fmt_bytes(overhead)} exceeds "
            f"{subject.target.name} storage {_fmt_bytes(limit)} by {_fmt_bytes(value - limit)}"
        )
        return [CheckResult("storage", ok, limit, value, "bytes", cause)]


class ModelBytesBudget(Check):
    """The recipe's `model_bytes` budget against the model file size."""

    name = "model_bytes"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("model_bytes")
        if limit is None:
            return []
        value = subject.model_bytes
        ok = value <= limit
        cause = None if ok else f"model file is {_fmt_bytes(value)}, {_fmt_bytes(value - limit)} over the budget"
        return [CheckResult("model_bytes", ok, limit, value, "bytes", cause)]


class AccuracyDropBudget(Check):
    """The recipe's `accuracy_drop` budget: source accuracy minus final accuracy (absolute)."""

    name = "accuracy_drop"

    def run(self, subject: Subject) -> list[CheckResult]:
        limit = subject.budget.get("accuracy_drop")
        if limit is None:
            return []
        before, after = subject.source_metrics.get("accuracy"), subject.metrics.get("accuracy")
        if before is None or after is None:
            return [CheckResult("accuracy_drop", False, limit, None, "fraction",
                                "accuracy was not measured (the recipe needs labelled eval data)")]
        drop = round(float(before) - float(after), 6)
        ok = drop <= limit
        cause = None if ok else f"accuracy fell from {before:.2%} to {after:.2%} ({drop * 100:.2f} points; budget {limit * 100:.2f})"
        return [CheckResult("accuracy_drop", ok, limit, drop, "fraction", cause)]


BUILTIN_CHECKS: tuple[type[Check], ...] = (StorageCheck, ModelBytesBudget, AccuracyDropBudget)


def run_checks(subject: Subject, extra: list[type[Check]] = ()) -> list[CheckResult]:  # type: ignore[assignment]
    results: list[CheckResult] = []
    for cls in (*BUILTIN_CHECKS, *extra):
        results.extend(cls().run(subject))
    return results
