"""The hook specifications: the whole contract between shrink and its plugins.

A plugin is a module (or object) with functions decorated by `shrink.hookimpl`, registered through
the `shrink` entry-point group in its distribution's `pyproject.toml`::

    [project.entry-points.shrink]
    lowrank = "shrink_lowrank.plugin"

Registration hooks return lists and are pure: they must not import heavy ML libraries (torch, nncf,
onnxsim, transformers); those belong inside `Pass.run()` and the functions it calls. The host detects
duplicate names across plugins and reports both. A hook implementation whose name matches no spec
below makes loading fail, so a misspelt hook is never silently ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from shrink.api.artifact import Artifact
    from shrink.api.checks import Check
    from shrink.api.context import Context, ModelFamily
    from shrink.api.passes import DataProvider, Pass, Source
    from shrink.api.preprocessing import Preprocessor

hookspec = pluggy.HookspecMarker("shrink")


@hookspec
def shrink_register_passes() -> list[type[Pass]]:
    """Return the `Pass` classes this plugin provides.

    Each class names itself (`name = "compress.lowrank"`); two plugins returning the same name is a
    conflict (exit 3). A class with `default = True` is what a bare kind (`"pass": "compress"`)
    resolves to.
    """


@hookspec
def shrink_register_targets() -> list[Path | dict[str, Any]]:
    """Return target profiles: paths to profile JSON files, or profiles as dicts.

    Profiles are validated against `shrink schema target`; names and aliases must be unique across
    all plugins.
    """


@hookspec
def shrink_register_sources() -> list[type[Source]]:
    """Return model `Source` classes (`model.source` in a recipe: `torch`, `onnx`, ...)."""


@hookspec
def shrink_register_datasets() -> list[type[DataProvider]]:
    """Return `DataProvider` classes (`data.source` in a recipe: `sklearn.digits`, ...)."""


@hookspec
def shrink_register_families() -> list[type[ModelFamily]]:
    """Return `ModelFamily` classes: how models of one kind are fed, measured, fingerprinted and cached in
    every format, and which capabilities (export, structural pruning, ...) they offer to generic passes.

    Each class names itself (`name = "huggingface"`); sources name the family of the models they load
    (`Source.family`), and the engine stamps every artifact with it.
    """


@hookspec
def shrink_register_checks() -> list[type[Check]]:
    """Return extra `Check` classes, run on the final model beside the built-in checks."""


@hookspec
def shrink_measure_artifact(artifact: Artifact, ctx: Context) -> dict[str, Any] | None:
    """Extra metrics of an artifact, beside those its family measures (`ModelFamily.measure`), or None.

    Called by the engine after the source loads and after every pass; results of all plugins are
    merged over the family's. A plugin must only answer for formats (and tasks) it knows.
    """


@hookspec(firstresult=True)
def shrink_preprocessor(record: dict[str, Any], bundle: Path) -> Preprocessor | None:
    """The transform a preprocessing record describes (`shrink schema preprocessing`), rebuilt from the record
    alone, or None when this plugin does not know the record's `kind`.

    `shrink verify BUNDLE --data PATH` asks for the bundle's record (for an `.npz` of model inputs, a record of
    kind `arrays`) and reads PATH with the answer (`Preprocessor.read`); the first plugin that answers wins.
    `bundle` is the bundle directory, where files the record names (a tokenizer) are. Like `verify`, the answer
    must not import torch: no recipe, no model source and no data provider options are available.
    """
