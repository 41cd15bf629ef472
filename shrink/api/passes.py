"""The contracts a plugin implements: `Pass`, `Source`, `DataProvider`, and their `Options`.

A pass declares everything about itself once, as class attributes::

    class Prune(Pass):
        \"\"\"Structured channel pruning with torch-pruning.\"\"\"   # first line: `shrink passes`

        name = "prune.structured"
        consumes = ("torch",)
        produces = "torch"
        requires = frozenset({"train"})

        class Options(PassOptions):
            ratio: float = Field(0.5, gt=0, le=0.95, description="fraction of channels to remove")

        def run(self, artifact: Artifact, ctx: Context) -> Artifact:
            import torch_pruning  # heavy imports only here
            ...

The JSON Schema of the pass's recipe step is generated from `Options` (types, defaults, bounds,
descriptions); pydantic validators on `Options` are the cross-field checks and run at plan time.
Plugin modules must import without torch, nncf, onnxsim or transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from shrink.api.artifact import Artifact
    from shrink.api.context import Context, Dataset, PlanContext


class PassOptions(BaseModel):
    """Base class for typed options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Pass:
    """A compiler pass: `run(artifact, ctx)` returns a new artifact and keeps no state between runs.

    Class attributes:
      name:      `"<kind>.<impl>"`, stable public API (`distill.kd`, `export.onnx`).
      consumes:  artifact formats it accepts (`"torch"`, `"onnx"`).
      produces:  the format it returns; the engine checks it at plan time and after `run()`.
      requires:  what it needs from the recipe: `"data"` (any split), `"train"`, `"calibration"`,
                 `"eval"`, `"labels"`.
      default:   True if this is the default implementation of its kind (`"pass": "prune"`).
      Options:   a `PassOptions` subclass.
    """

    name: ClassVar[str]
    consumes: ClassVar[tuple[str, ...]]
    produces: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    default: ClassVar[bool] = False
    Options: ClassVar[type[PassOptions]] = PassOptions

    def __init__(self, options: PassOptions) -> None:
        self.options = options

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]

    def check(self, plan: PlanContext) -> list[str]:
        """Plan-time checks that need the recipe or target (no model is loaded).

        Return one message per problem; the engine prefixes the step's JSON path.
        """
        return []

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        """Transform `artifact` and return a new one; never mutate the input."""
        raise NotImplementedError


class Source:
    """A model source: turns the recipe's `model` section into the first artifact.

    `name` is the value of `model.source`; `Options` validates the rest of the section.
    """

    name: ClassVar[str]
    produces: ClassVar[str]
    Options: ClassVar[type[PassOptions]] = PassOptions

    def __init__(self, options: PassOptions) -> None:
        self.options = options

    def check(self, plan: PlanContext) -> list[str]:
        """Plan-time checks (files exist, factories are well-formed); one message per problem."""
        return []

    def load(self, ctx: Context) -> Artifact:
        raise NotImplementedError


class DataProvider:
    """A dataset: turns the recipe's `data` section into a `Dataset` with named splits."""

    name: ClassVar[str]
    Options: ClassVar[type[PassOptions]] = PassOptions
    splits: ClassVar[tuple[str, ...]] = ("train", "calibration", "eval")
    labels: ClassVar[bool] = True

    def __init__(self, options: PassOptions) -> None:
        self.options = options

    def check(self, plan: PlanContext) -> list[str]:
        return []

    def load(self, ctx: Context) -> Dataset:
        raise NotImplementedError

    def fingerprint(self, ctx: Context) -> str | None:
        """Optional: the fingerprint `load()` would give, computed without loading (e.g. a hash of the
        raw files and the options). It keys the pass cache together with the provider's own code; None
        means "load the data to fingerprint it"."""
        return None


def summary(cls: type[Any]) -> str:
    """The first line of a plugin class's docstring."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
