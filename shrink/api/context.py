"""What a pass works with besides its artifact: the run `Context`, at plan time the `PlanContext`, and the
`ModelFamily` that handles the artifact's kind of model (`ctx.family(artifact)`, `plan.family`).

A `ModelFamily` is how shrink handles one kind of model (a torch module, a Hugging Face encoder, an
ONNX file, ...) through every pass, whatever its current format. A family is registered by its plugin (`shrink_register_families`). A model source names its family
(`Source.family`), the engine stamps every artifact with it (`Artifact.family`), and passes keep it
when they change the format: a Hugging Face encoder exported to ONNX is still a `huggingface`
artifact, so quantization calibrates it with tokenized text. Generic passes and the engine reach
family-specific behaviour only through these methods (and the capability protocols of the passes
that need more, e.g. export or structural pruning), never by testing another family's meta keys.

The defaults handle ONNX-format artifacts for every family (metrics with ONNX Runtime, file
fingerprints, saving the file for the pass cache) and build inputs from array data; a family
overrides what it does differently and adds its own formats. Like passes, a family module imports
no heavy library at import time.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shrink.api.data import Dataset, Feeds, Split, array_feeds
from shrink.errors import RecipeError

if TYPE_CHECKING:
    from shrink.api.artifact import Artifact
    from shrink.api.recipe import Recipe
    from shrink.api.target import Target


class ModelFamily:
    """The behaviour shared by every model of one kind.

    Class attributes:
      name:       the value of `Artifact.family` and `Source.family` (`"torch"`, `"huggingface"`).
      formats:    formats this family handles when an artifact names no family (a third-party source
                  that produces `"torch"` without naming a family gets the family listing `"torch"`).
      libraries:  distributions whose installed versions key the cached results of this family's
                  artifacts (e.g. `("torch", "transformers")`).
    """

    name: ClassVar[str] = "generic"
    formats: ClassVar[tuple[str, ...]] = ()
    libraries: ClassVar[tuple[str, ...]] = ()

    def feeds(self, artifact: Artifact, ctx: Context, splits: tuple[str, ...], count: int) -> Feeds | None:
        """Up to `count` real model inputs from the first of `splits` that fits the model, or None.

        Default: rows of an array split fitting a single-input model. Families whose data needs
        preparing (tokenizing text, computing audio features) override this.
        """
        return array_feeds(artifact.inputs, ctx.data, splits, count)

    def measure(self, artifact: Artifact, ctx: Context) -> dict[str, Any]:
        """Metrics of `artifact` after the source and after every pass (`params`, `model_bytes`, `macs`,
        `accuracy` on the eval split as a fraction and `brier`, the Brier score of the same outputs, as
        `shrink.api.data.classification_scores` computes both, ...). Default: the ONNX metrics for ONNX files, the TFLite
        metrics (TFLite Micro's measured arena and accuracy) for `.tflite` files."""
        if artifact.format == "tflite":
            from shrink.api import tflite_format

            return tflite_format.measure(artifact, ctx.data)
        if artifact.format != "onnx":
            return {}
        from shrink.api.onnx_format import measure

        return measure(artifact, ctx.data)

    def preprocessing(self, artifact: Artifact, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """The data source's preprocessing record of the final `artifact` (None: none), completed with what this
        family does to the samples before the model (the Hugging Face family records its tokenizer). Default: as
        it is."""
        return record

    def fingerprint(self, artifact: Artifact) -> str | None:
        """A cheap value that changes whenever the model object is modified in place; the engine compares
        it before and after each pass (passes must never mutate their input). None: cannot tell."""
        if artifact.format not in ("onnx", "tflite"):
            return None
        from shrink.api.onnx_format import fingerprint

        return fingerprint(Path(artifact.model))

    def save(self, artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
        """Save `artifact.model` into the empty `directory` for the pass cache and return a JSON-able
        descriptor, or None when it cannot be saved and restored faithfully (the step then reruns)."""
        if artifact.format == "tflite":
            from shrink.api import tflite_format

            return tflite_format.save(Path(artifact.model), directory)
        if artifact.format != "onnx":
            return None
        from shrink.api.onnx_format import save

        return save(Path(artifact.model), directory)

    def load(self, format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any],
             ctx: Context) -> Any | None:
        """Restore a model saved by `save`: the object for `Artifact.model`, built from copies of the files
        (`ctx.new_path(...)`), never the cache's own. Raise when it cannot be restored (the step reruns)."""
        if format == "tflite":
            from shrink.api import tflite_format

            return tflite_format.load(descriptor, directory, ctx.new_path("cached", ".tflite"))
        if format != "onnx":
            return None
        from shrink.api.onnx_format import load

        return load(descriptor, directory, ctx.new_path("cached", ".onnx"))


@dataclass(frozen=True)
class PlanContext:
    """Plan time: the validated recipe and the resolved target; no model, no data loaded."""

    recipe: Recipe
    target: Target
    index: int | None = None  # the step being checked
    family: ModelFamily = field(default_factory=ModelFamily)  # the model's family at this step
    shapes: Mapping[str, list[int]] = field(default_factory=dict)  # input shapes pinned on the command line (--shape)
    inputs: list[dict[str, Any]] | None = None  # the model's inputs, when its source knows them (`Source.inputs`)
    model_meta: Mapping[str, Any] = field(default_factory=dict)  # what the source knows before loading (`Source.plan_meta`)

    def path(self, value: str) -> Path:
        """A recipe path, resolved against the recipe file's directory."""
        return self.recipe.resolve_path(value)


@dataclass
class Context:
    """Run time: everything a pass may use besides its artifact.

    `workdir` is a private temporary directory for files (ONNX models, checkpoints), removed after
    the compile; `new_path()` gives a fresh file name inside it. `data` is None when the recipe has
    no `data` section. `report(fraction, text)` advances the progress display.
    """

    recipe: Recipe
    target: Target
    data: Dataset | None
    workdir: Path
    seed: int = 0
    source: Any = None  # the source artifact (the original model), for teachers and accuracy drops
    families: Mapping[str, ModelFamily] = field(default_factory=dict)  # registered families by name
    shapes: Mapping[str, list[int]] = field(default_factory=dict)  # input shapes pinned on the command line (--shape)
    # the model's inputs as its source declared them at plan time (`PlanContext.inputs`), so that data providers
    # shape their samples for the model before it is loaded; None when the source cannot tell without loading
    inputs: list[dict[str, Any]] | None = None
    report: Callable[[float, str], None] = lambda fraction, text: None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("shrink"))
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)

    def new_path(self, stem: str, suffix: str) -> Path:
        return self.workdir / f"{next(self._counter):03d}-{stem}{suffix}"

    def path(self, value: str) -> Path:
        return self.recipe.resolve_path(value)

    def family(self, artifact: Artifact) -> ModelFamily:
        """The family that handles `artifact` (the engine stamps every artifact with its family's name)."""
        return self.families.get(artifact.family) or ModelFamily()

    def require_data(self, split: str, who: str) -> Split:
        if self.data is None:
            raise RecipeError(f"{who} needs data but the recipe has no 'data' section")
        return self.data.split(split)
