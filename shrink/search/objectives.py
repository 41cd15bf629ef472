"""What `shrink search` optimizes (objectives, read from a compile's result) and what it must satisfy (constraints:
the compile's checks, so the recipe's budgets and the target's limits).

A figure a compile did not record is `None`: the trial cannot be scored and counts as failed, never as a number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shrink.errors import UsageError

if TYPE_CHECKING:
    from shrink.commands.results import CompileResult


def _number(value: Any) -> float | None:
    """A figure as a float; None for anything that is not a number (a missing figure, a bool, text)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_value(name: str) -> Callable[[CompileResult], float | None]:
    def figure(result: CompileResult) -> float | None:
        return next((v for c in result.checks if c.name == name and (v := _number(c.value)) is not None), None)
    return figure


def _metric(*names: str) -> Callable[[CompileResult], float | None]:
    def figure(result: CompileResult) -> float | None:
        return next((v for name in names if (v := _number(result.metrics.get(name))) is not None), None)
    return figure


def _loss(result: CompileResult) -> float | None:
    brier, cosine = _number(result.metrics.get("brier")), _number(result.metrics.get("cosine"))
    return brier if brier is not None else (None if cosine is None else 1.0 - cosine)


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Literal["maximize", "minimize"]
    figure: Callable[[CompileResult], float | None]
    unit: str
    description: str

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    def format(self, value: float | None) -> str:
        if value is None:
            return "–"
        if self.unit == "fraction":
            return f"{value:.2%}"
        if self.unit == "ms":
            return f"{value:.4g} ms"
        if self.unit == "score":
            return f"{value:.5g}"
        return f"{value:,.0f} {self.unit}"


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("accuracy", "maximize", _metric("accuracy", "cosine"), "fraction",
              "top-1 accuracy on the eval split; for models without labels, the cosine to the source model's outputs"),
    Objective("loss", "minimize", _loss, "score",
              "a continuous quality figure that still separates models whose top-1 accuracy ties: the Brier score of "
              "the eval split (the mean squared distance of the class probabilities from the one-hot labels) for "
              "classifiers; 1 - cosine to the source model's outputs for encoders"),
    Objective("size", "minimize", _metric("model_bytes"), "bytes", "bytes of the deployable model file"),
    Objective("latency", "minimize", _check_value("latency"), "ms",
              "the target's latency estimate (upper end), as the latency check computes it"),
    Objective("macs", "minimize", _metric("macs"), "MACs", "multiply-accumulates per inference"),
    Objective("ram", "minimize", _check_value("ram"), "bytes", "the target's RAM estimate, as the ram check computes it"),
)}

# top-1 on a few hundred eval samples takes only a few values within an accuracy budget, so trials tie on it: the
# loss tells the tied trials apart, and the front shows what size buys (the first objective still chooses best.json)
DEFAULT_OBJECTIVES = ("accuracy", "size", "loss")


def objectives(names: Any, where: str = "--objective") -> tuple[Objective, ...]:
    """The objectives named (a list, or comma-separated text), in order; the default is accuracy, size and loss."""
    if names is None or names == [] or names == "":
        names = list(DEFAULT_OBJECTIVES)
    if isinstance(names, str):
        names = [names]
    flat = [part.strip() for name in names for part in str(name).split(",") if part.strip()]
    unknown = [n for n in flat if n not in OBJECTIVES]
    if unknown:
        raise UsageError(f"unknown objective {unknown[0]!r}", where=where, hint=f"choose from {', '.join(OBJECTIVES)}")
    if len(set(flat)) != len(flat):
        raise UsageError("an objective is named twice", where=where)
    return tuple(OBJECTIVES[n] for n in flat)


def violations(result: CompileResult) -> dict[str, float]:
    """One constraint per check, 0 when it passed, otherwise how far it missed relative to its limit (at least
    1e-6; 1 when the check had no figure, as with "cannot verify")."""
    out = {}
    for check in result.checks:
        if check.ok:
            out[check.name] = 0.0
            continue
        value, limit = check.value, check.limit
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, limit))
        miss = abs(float(value) - float(limit)) / max(abs(float(limit)), 1e-12) if numeric else 1.0  # type: ignore[arg-type]
        out[check.name] = max(miss, 1e-6)
    return out
