"""What a local Hugging Face model folder holds, read without torch or transformers (plan time): its weights
file, its config, whether it takes images or text, its tokenizer and image preprocessor, and the task a
recipe's `task` means for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, get_args

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
PREPROCESSOR_FILE = "preprocessor_config.json"

Modality = Literal["text", "vision"]
HFTask = Literal["sentence-embedding", "sequence-classification", "image-classification"]
Task = Literal["sentence-embedding", "feature-extraction", "classification", "sequence-classification", "image-classification"]
TASKS: tuple[str, ...] = get_args(Task)

# Encoders whose layers are BERT's (`encoder.layer[i].attention.self.query`, `intermediate.dense`): what head
# pruning and the TinyBERT / MobileBERT distillations reach into.
BERT_LAYOUT = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
# Encoders that number positions after the padding index (RoBERTa's `create_position_ids_from_input_ids`): a
# sequence of n tokens reads position rows up to pad_token_id + n.
POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod",
                           "roberta-prelayernorm", "mpnet", "ibert")


class FolderError(ValueError):
    """The folder cannot be used as a model source (the message says why)."""


def weights_file(folder: Path) -> Path | None:
    """The folder's weights file, safetensors first."""
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def package_folder(name: str) -> Path | None:
    """The model folder inside an installed distribution: the directory holding config.json and weights."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    for entry in sorted(dist.files or [], key=str):
        if entry.name == "config.json":
            folder = Path(str(dist.locate_file(entry))).parent
            if weights_file(folder) is not None:
                return folder
    return None


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FolderError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FolderError(f"{path} holds a {type(value).__name__}, not a JSON object")
    return value


def modality(config: dict[str, Any]) -> Modality | None:
    """Text models have a vocabulary; image models have input channels and none."""
    if "vocab_size" in config:
        return "text"
    if "num_channels" in config:
        return "vision"
    return None


def resolve_task(task: str | None, kind: Modality, model_type: str) -> HFTask:
    """The Auto-class task a recipe's `task` means for a model of `kind` (None: the kind's default)."""
    if kind == "vision":
        if task in (None, "classification", "image-classification"):
            return "image-classification"
        raise FolderError(f"task {task!r} is for text models; {model_type!r} is an image model: use "
                          "'image-classification'")
    if task in (None, "sentence-embedding", "feature-extraction"):
        return "sentence-embedding"
    if task in ("classification", "sequence-classification"):
        return "sequence-classification"
    raise FolderError(f"task {task!r} is for image models; {model_type!r} is a text model: use "
                      "'sentence-embedding' (or 'feature-extraction') or 'sequence-classification'")


def tokenizer_model(folder: Path) -> str | None:
    """The tokenizer's model type (`WordPiece`, `BPE`, …): from tokenizer.json, or WordPiece for a bare
    vocab.txt; None without a tokenizer."""
    if (folder / "tokenizer.json").is_file():
        try:
            return str(read_json(folder / "tokenizer.json").get("model", {}).get("type") or "unknown")
        except FolderError:
            return "unknown"
    return "WordPiece" if (folder / "vocab.txt").is_file() else None


def trained_image_size(config: dict[str, Any], preprocessor: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """(height, width) of the images the model was trained on: the preprocessor's crop (when it crops) or
    resize size, else the config's `image_size`; None for a side nothing gives."""
    def pair(value: Any) -> tuple[int | None, int | None] | None:
        if isinstance(value, int) and value > 0:
            return value, value
        if isinstance(value, dict):
            if isinstance(value.get("height"), int) and isinstance(value.get("width"), int):
                return value["height"], value["width"]
            for key in ("shortest_edge", "longest_edge"):  # without a crop, a square at that edge
                if isinstance(value.get(key), int):
                    return value[key], value[key]
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return value[0], value[1]
        return None

    pre = preprocessor or {}
    for found in (pair(pre.get("crop_size")) if pre.get("do_center_crop", True) else None, pair(pre.get("size")),
                  pair(config.get("image_size"))):
        if found is not None:
            return found
    return None, None


@dataclass(frozen=True)
class ModelFolder:
    """A model folder's facts, read at plan time: config, kind of input, the task, tokenizer and preprocessor."""

    path: Path
    config: dict[str, Any]
    kind: Modality
    task: HFTask
    preprocessor: dict[str, Any] | None

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type") or "?")

    @property
    def bert_layout(self) -> bool:
        return self.model_type in BERT_LAYOUT

    @property
    def has_attention(self) -> bool:
        """Attention layers (a ViT, a MobileViT), which channel pruning would scramble."""
        return any(key in self.config for key in ("num_attention_heads", "n_heads", "num_heads"))

    @property
    def image_size(self) -> tuple[int | None, int | None]:
        return trained_image_size(self.config, self.preprocessor)

    @property
    def max_tokens(self) -> int | None:
        """The longest token sequence the model's position table can embed (None: the config does not say)."""
        positions = self.config.get("max_position_embeddings")
        if not isinstance(positions, int) or positions <= 0:
            return None
        if self.model_type in POSITIONS_AFTER_PADDING:
            positions -= int(self.config.get("pad_token_id") or 0) + 1
        return positions

    @property
    def tokenizer(self) -> str | None:
        return tokenizer_model(self.path)

    @property
    def describe(self) -> str:
        kind = "image classifier" if self.kind == "vision" else "text encoder"
        return f"{self.model_type!r} ({kind})"


def read_folder(folder: Path, task: str | None) -> ModelFolder:
    """The folder's facts; a `FolderError` says what is missing or inconsistent."""
    if not (folder / "config.json").is_file():
        raise FolderError(f"model folder {str(folder)!r} has no config.json")
    if weights_file(folder) is None:
        raise FolderError(f"model folder {str(folder)!r} has no weights ({' or '.join(WEIGHT_FILES)})")
    config = read_json(folder / "config.json")
    model_type = str(config.get("model_type") or "?")
    kind = modality(config)
    if kind is None:
        raise FolderError(f"{folder / 'config.json'}: model type {model_type!r} takes neither text (no vocab_size) "
                          "nor images (no num_channels)")
    preprocessor = read_json(folder / PREPROCESSOR_FILE) if (folder / PREPROCESSOR_FILE).is_file() else None
    found = ModelFolder(folder, config, kind, resolve_task(task, kind, model_type), preprocessor)
    if kind == "text" and found.tokenizer is None:
        raise FolderError(f"model folder {str(folder)!r} has no tokenizer (tokenizer.json, or a WordPiece vocab.txt)")
    return found
