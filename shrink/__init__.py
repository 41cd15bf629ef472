"""shrink: a compiler for small models.

The public API for plugin authors: `hookimpl`, `Pass`, `PassOptions`, `Source`, `DataProvider`,
`ModelFamily`, `Artifact`, `Context`, `PlanContext`, `Dataset`, `Split`, `Feeds`, `Recipe`, `Target`,
`Check`, `CheckResult` and the `ShrinkError` family (all defined in `shrink.api`).
"""

from __future__ import annotations

from importlib import metadata

import pluggy

try:
    __version__ = metadata.version("shrink")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

hookimpl = pluggy.HookimplMarker("shrink")

from shrink.api.artifact import Artifact, Step  # noqa: E402
from shrink.api.checks import Check, CheckResult, Subject  # noqa: E402
from shrink.api.context import Context, ModelFamily, PlanContext  # noqa: E402
from shrink.api.data import Dataset, Feeds, Split  # noqa: E402
from shrink.api.passes import DataProvider, Pass, PassOptions, Source  # noqa: E402
from shrink.api.recipe import Recipe  # noqa: E402
from shrink.api.target import Target  # noqa: E402
from shrink.errors import ExitCode, PassFailed, PluginError, ShrinkError, UsageError  # noqa: E402

__all__ = [
    "Artifact", "Check", "CheckResult", "Context", "DataProvider", "Dataset", "ExitCode", "Feeds", "ModelFamily", "Pass",
    "PassFailed", "PassOptions", "PlanContext", "PluginError", "Recipe", "ShrinkError", "Source", "Split", "Step",
    "Subject", "Target", "UsageError", "hookimpl", "__version__",
]
