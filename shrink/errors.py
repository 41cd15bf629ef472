"""The `ShrinkError` family: every error a user can cause, each with its documented exit code.

Anything that is not a `ShrinkError` is a bug in shrink or a plugin and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (DESIGN §6)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    PLUGIN = 3
    CHECK_FAILED = 4
    PASS_FAILED = 5
    INTERRUPTED = 130


@dataclass(frozen=True)
class Problem:
    """One problem at one place: `where` is a file and JSON path (`recipe.json: passes[1].ratio`)."""

    where: str
    message: str
    hint: str | None = None

    def line(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def as_dict(self) -> dict[str, str | None]:
        return {"where": self.where, "message": self.message, "hint": self.hint}


class ShrinkError(Exception):
    """A user-facing error: printed as one line per problem (plus hints), never with a traceback."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, problems: list[Problem] | str, *, where: str = "", hint: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(where, problems, hint)]
        self.problems: list[Problem] = problems
        super().__init__("\n".join(p.line() for p in problems))


class UsageError(ShrinkError):
    """Bad command-line usage, recipe, target profile or input file (exit 2)."""

    exit_code = ExitCode.USAGE


class RecipeError(UsageError):
    """The recipe cannot be loaded, validated or planned (exit 2)."""


class TargetError(UsageError):
    """A target profile is unknown or invalid (exit 2)."""


class CacheError(UsageError):
    """A pass-cache entry failed its sha256 check under `--strict-cache` (exit 2)."""


class PluginError(ShrinkError):
    """A plugin failed to load, registered a duplicate name or broke its contract (exit 3)."""

    exit_code = ExitCode.PLUGIN


class PassFailed(ShrinkError):
    """A pass raised while running; no bundle is written (exit 5)."""

    exit_code = ExitCode.PASS_FAILED


class ChecksFailed(ShrinkError):
    """At least one budget or constraint check failed (exit 4)."""

    exit_code = ExitCode.CHECK_FAILED
