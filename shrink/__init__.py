"""shrink: a compiler for small models.

The commands as Python functions (`docs/guide.md`): `compile`, `plan`, `verify`, `inspect`, `describe_pass` and
`list_passes` return the result objects their `--json` output serialises (`CompileResult`, `PlanResult`,
`VerifyResult`, `InspectResult`, `PassInfo`) and raise the `ShrinkError` family.

The public API for plugin authors: `hookimpl`, `Pass`, `PassOptions`, `Source`, `DataProvider`,
`ModelFamily`, `Artifact`, `Context`, `PlanContext`, `Dataset`, `Split`, `Feeds`, `Recipe`, `Target`,
`Check`, `CheckResult` and the `ShrinkError` family (all defined in `shrink.api`).
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib import metadata

import pluggy

try:
    __version__ = metadata.version("shrink")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

hookimpl = pluggy.HookimplMarker("shrink")


_COMMANDS = ("CompileResult", "InspectResult", "PassInfo", "PlanResult", "Result", "SearchResult", "VerifyResult",
             "compile", "describe_pass", "inspect", "list_passes", "plan", "search", "verify")


class _Package(types.ModuleType):
    """`shrink.plan` and `shrink.search` are commands; the subpackages of the same names (the planner, the study) are
    reached by their full names (`from shrink.plan.planner import ...`), so importing them must not bind the package
    attribute."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("plan", "search") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> object:
    """The commands (`shrink.commands`), loaded on first use and by name: plugins import `shrink` for the contracts,
    and a pass's cache key follows its imports statically, which must not reach the engine the commands drive."""
    if name in _COMMANDS:
        value = getattr(importlib.import_module("shrink.commands"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shrink' has no attribute {name!r}")


from shrink.api.artifact import Artifact, Step  # noqa: E402
from shrink.api.checks import Check, CheckResult, Subject  # noqa: E402
from shrink.api.context import Context, ModelFamily, PlanContext  # noqa: E402
from shrink.api.data import Dataset, Feeds, Split  # noqa: E402
from shrink.api.passes import DataProvider, Pass, PassOptions, Source  # noqa: E402
from shrink.api.recipe import Recipe  # noqa: E402
from shrink.api.target import Target  # noqa: E402
from shrink.errors import ChecksFailed, ExitCode, PassFailed, PluginError, ShrinkError, UsageError  # noqa: E402

__all__ = [
    "Artifact", "Check", "CheckResult", "ChecksFailed", "CompileResult", "Context", "DataProvider", "Dataset", "ExitCode",
    "Feeds", "InspectResult", "ModelFamily", "Pass", "PassFailed", "PassInfo", "PassOptions", "PlanContext", "PlanResult",
    "PluginError", "Recipe", "Result", "ShrinkError", "Source", "Split", "Step", "Subject", "Target", "UsageError",
    "VerifyResult", "__version__", "compile", "describe_pass", "hookimpl", "inspect", "list_passes", "plan", "verify",
]
