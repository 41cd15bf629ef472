"""The contracts a plugin implements: `Pass`, `Source`, `DataProvider`, and their `Options`.

A pass declares everything about itself once, as class attributes; its options are a typed class::

    class PruneOptions(PassOptions):
        ratio: float = Field(0.5, gt=0, le=0.95, description="fraction of channels to remove")

    class Prune(Pass[PruneOptions]):
        \"\"\"Structured channel pruning with torch-pruning.\"\"\"   # first line: `shrink passes`

        name = "prune.structured"
        consumes = ("torch",)
        produces = "torch"
        requires = frozenset({"train"})
        libraries = ("torch", "torch-pruning")

        def run(self, artifact: Artifact, ctx: Context) -> Artifact:
            import torch_pruning  # heavy imports only here
            ratio = self.options.ratio  # typed: PruneOptions
            ...

`Options` is taken from the type argument (`Pass[PruneOptions]`); a nested `class Options(PassOptions)`
works too. The JSON Schema of the pass's recipe step is generated from `Options` (types, defaults,
bounds, descriptions); pydantic validators on `Options` are the cross-field checks and run at plan
time. Plugin modules must import without torch, nncf, onnxsim or transformers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args

from shrink.api.options import PassOptions
from shrink.errors import PluginError, Problem

if TYPE_CHECKING:
    from shrink.api.artifact import Artifact
    from shrink.api.context import Context, PlanContext
    from shrink.api.data import Dataset

PASS_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")


OptionsT = TypeVar("OptionsT", bound=PassOptions)


class _Configured(Generic[OptionsT]):
    """A plugin class configured by a typed `Options` (`Pass[MyOptions]`, `Source[MyOptions]`, ...)."""

    Options: ClassVar[type[PassOptions]] = PassOptions
    libraries: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Options" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, PassOptions):
                    cls.Options = arg
                    return

    def __init__(self, options: OptionsT) -> None:
        self.options: OptionsT = options


class Pass(_Configured[OptionsT]):
    """A compiler pass: `run(artifact, ctx)` returns a new artifact and keeps no state between runs.

    Class attributes:
      name:       `"<kind>.<impl>"`, stable public API (`distill.kd`, `export.onnx`).
      consumes:   artifact formats it accepts (`"torch"`, `"onnx"`).
      produces:   the format it returns; the engine checks it at plan time and after `run()`.
      requires:   what it needs from the recipe: `"data"` (any split), `"train"`, `"calibration"`,
                  `"eval"`, `"labels"`.
      default:    True if this is the default implementation of its kind (`"pass": "prune"`).
      libraries:  distributions whose installed versions key this pass's cached results.
      Options:    a `PassOptions` subclass (from the type argument, or a nested class).
    """

    name: ClassVar[str]
    consumes: ClassVar[tuple[str, ...]]
    produces: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    default: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this pass cannot run in this installation (an optional library is missing), with the command that
        installs it; None when it can. `shrink passes` lists the reason and planning a recipe that uses the pass
        fails with it (exit 2). Must not import the missing libraries (use `importlib.util.find_spec`)."""
        return None

    def check(self, plan: PlanContext) -> list[str]:
        """Plan-time checks that need the recipe, target or model family (no model is loaded).

        Return one message per problem; the engine prefixes the step's JSON path.
        """
        return []

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        """Transform `artifact` and return a new one; never mutate the input or its model object."""
        raise NotImplementedError


class Source(_Configured[OptionsT]):
    """A model source: turns the recipe's `model` section into the first artifact.

    `name` is the value of `model.source`; `family` names the `ModelFamily` of the models it loads
    (empty: the family registered for its `produces` format); `Options` validates the rest of the section.
    """

    name: ClassVar[str]
    produces: ClassVar[str]
    family: ClassVar[str] = ""

    def check(self, plan: PlanContext) -> list[str]:
        """Plan-time checks (files exist, factories are well-formed); one message per problem."""
        return []

    @classmethod
    def claims(cls, model: str) -> dict[str, Any] | None:
        """For `shrink init`: the recipe's `model` section (without `source`) when this source loads the model the
        user named on the command line (a file, a folder, a `file.py:callable` factory); None otherwise. Paths
        in the section are as given; `init` rewrites them relative to the recipe."""
        return None

    def inputs(self, plan: PlanContext) -> list[dict[str, Any]] | None:
        """The model's inputs as `load()` will record them (`meta["inputs"]` form, see `shrink.api.inputs`), with
        `plan.shapes` applied, when they are known without loading the model; None otherwise. The planner
        refuses inputs with dims left unpinned, and data providers compare their samples with them."""
        return None

    def plan_meta(self, plan: PlanContext) -> dict[str, Any]:
        """What `load()` will record in the artifact's meta that is known at plan time without loading the model
        (e.g. `quantization` for a file that is already quantized), for passes' plan-time checks."""
        return {}

    def files(self, plan: PlanContext) -> list[Path]:
        """Every file or folder `load()` reads the model from, for the pass cache's keys (which hash them by
        content): needed where the options do not name them as recipe paths (a model an installed package
        ships, external weight data beside a model file). Called only when `check()` found no problem."""
        return []

    def load(self, ctx: Context) -> Artifact:
        raise NotImplementedError


class DataProvider(_Configured[OptionsT]):
    """A dataset: turns the recipe's `data` section into a `Dataset` with named splits."""

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("train", "calibration", "eval")
    labels: ClassVar[bool] = True

    @classmethod
    def claims(cls, path: str) -> dict[str, Any] | None:
        """For `shrink init`: the recipe's `data` section (without `source`) when this provider reads the data at
        `path` (a folder of images, a file of lines, an `.npz`, ...); None otherwise."""
        return None

    def check(self, plan: PlanContext) -> list[str]:
        return []

    def load(self, ctx: Context) -> Dataset:
        raise NotImplementedError

    def fingerprint(self, ctx: Context) -> str | None:
        """Optional: the fingerprint `load()` would give, computed without loading (e.g. a hash of the
        raw files and the options). It keys the pass cache together with the provider's own code; None
        means "load the data to fingerprint it"."""
        return None

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The preprocessing record of the samples this source gave the model (`shrink schema preprocessing`: how a
        raw file becomes the final model's `inputs`, and the label names), written into the bundle's manifest and
        applied by `shrink verify --data`; None when there is nothing to record (generated data). Called after the
        passes, possibly without `load()` (a fully cached compile): compute it from the options and the listing."""
        return None


def summary(cls: type[Any]) -> str:
    """The first line of a plugin class's docstring."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def check_pass_class(cls: Any, where: str) -> None:
    """Reject a registered pass class that breaks the `Pass` contract (exit 3, addressed to its author)."""
    problems = []
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise PluginError(f"{cls!r} is not a subclass of shrink.Pass", where=where)
    if not PASS_NAME.match(cls.name):
        problems.append(f"pass name {cls.name!r} must look like '<kind>.<impl>' (lowercase)")
    consumes = getattr(cls, "consumes", None)
    if not (isinstance(consumes, tuple) and consumes and all(isinstance(c, str) for c in consumes)):
        problems.append(f"pass {cls.name!r}: 'consumes' must be a non-empty tuple of format names")
    if not isinstance(getattr(cls, "produces", None), str):
        problems.append(f"pass {cls.name!r}: 'produces' must be a format name")
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, PassOptions)):
        problems.append(f"pass {cls.name!r}: 'Options' must subclass shrink.PassOptions")
    if cls.run is Pass.run:
        problems.append(f"pass {cls.name!r} does not implement run()")
    if problems:
        raise PluginError([Problem(where, p) for p in problems])
