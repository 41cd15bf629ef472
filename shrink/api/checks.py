"""The check contract: `Check` classes yield `CheckResult`s about a `Subject` (the final model on its target).

Every check yields results of one shape, used everywhere (manifest, `--json`, report):
`{name, ok, limit, value, unit, cause}`. Gates use deterministic figures only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from shrink.api.target import Target


ANALYSIS_CHECKS = ("ram", "ram_bytes", "latency", "latency_ms", "energy", "energy_mj", "macs")
"""The checks whose figure comes from the static analysis, which may be incomplete (they fail closed)."""


def allowed_incomplete(budget: Mapping[str, Any], extra: Iterable[str] = ()) -> frozenset[str]:
    """The checks a budget's `allow_incomplete` (true: all, or a list of check names) and `extra` (e.g. from
    `--allow-incomplete`) let gate on an incomplete figure; `"*"` stands for all."""
    value = budget.get("allow_incomplete")
    names = {"*"} if value is True else set(value) if isinstance(value, list) else set()
    return frozenset(names | set(extra))


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
    inputs: list[dict[str, Any]] = field(default_factory=list)  # [{name, shape, dtype}] pinning dynamic dims
    shapes: dict[str, list[int]] = field(default_factory=dict)  # explicit --shape overrides
    allow_incomplete: frozenset[str] = frozenset()  # checks that may gate on an incomplete figure ("*": all)
    _analysis: Any = field(default=None, repr=False)

    def findings(self) -> tuple[str, ...]:
        """What the analysis could not compute ("incomplete: ...") and its notes, once it has run (else nothing)."""
        if self._analysis is None:
            return ()
        return (*(f"incomplete: {reason}" for reason in self._analysis.incomplete), *self._analysis.notes)

    def accepts_incomplete(self, check: str) -> bool:
        """Whether the recipe or command line accepts an incomplete analysis figure for `check`."""
        return "*" in self.allow_incomplete or check in self.allow_incomplete

    @property
    def model_bytes(self) -> int:
        return self.model_path.stat().st_size

    @property
    def format(self) -> str:
        """The model file's format, from its suffix (`model.onnx` → `"onnx"`)."""
        return self.model_path.suffix.lstrip(".").lower() or "onnx"

    @property
    def analysis(self) -> Any:
        """The static analysis of the model (`shrink.analysis.Analysis`), computed once on first use."""
        if self._analysis is None and self.format == "tflite":
            from shrink.analysis.tflite_model import analyze_tflite

            self._analysis = analyze_tflite(self.model_path)
        if self._analysis is None:
            from shrink.analysis import analyze

            pinned = {i["name"]: list(i["shape"]) for i in self.inputs
                      if i.get("shape") and all(isinstance(d, int) for d in i["shape"])}
            self._analysis = analyze(self.model_path, {**pinned, **self.shapes} or None)
        return self._analysis


class Check:
    """A constraint checker; `run(subject)` returns results (empty when it does not apply)."""

    name: ClassVar[str]

    def run(self, subject: Subject) -> list[CheckResult]:
        raise NotImplementedError
