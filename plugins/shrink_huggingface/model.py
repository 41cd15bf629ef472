"""torch side of the Hugging Face family: the wrappers that give every model a plain tensor-in, tensor-out
forward (a text `Encoder`, an `ImageClassifier`), loading a model folder through transformers' Auto classes
with its loading report, embedding text, and saving/restoring models for the pass cache. Imported only from
`load()`, `run()` and hooks."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shrink import UsageError


class Encoder(nn.Module):
    """A text model: `forward(input_ids, attention_mask)` returns the logits of the model's own
    sequence-classification forward (task `classification`), or the sentence embedding (`sentence-embedding`:
    mean pooling of the last hidden state over the mask, L2-normalised). `output_size` different from the
    hidden width adds a linear projection of the pooled embedding (a narrow student then still embeds into its
    teacher's space)."""

    def __init__(self, model: nn.Module, task: str, normalize: bool = True, output_size: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.normalize = normalize
        hidden = hidden_size(model.config)
        self.output_size = output_size or hidden
        self.projection = nn.Linear(hidden, self.output_size) if task != "classification" and self.output_size != hidden else None

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def bert(self) -> nn.Module:
        """The transformer body (embeddings + encoder layers), whatever the head."""
        return getattr(self.model, self.model.base_model_prefix, self.model)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any:
        """The body's output (`last_hidden_state`, and what `kwargs` ask for: hidden states, attentions)."""
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def head(self, output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        """The sentence embedding of a body output (task `sentence-embedding`)."""
        if self.task == "classification":
            raise TypeError("a classifier's head is its model's own forward: use predict()")
        hidden = output.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.projection is not None:
            pooled = self.projection(pooled)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def predict(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        """(the model's output — logits or embedding —, the forward's output with what `kwargs` ask for)."""
        if self.task == "classification":
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            return out.logits, out
        out = self.hidden(input_ids, attention_mask, **kwargs)
        return self.head(out, attention_mask), out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.predict(input_ids, attention_mask)[0]


class ImageClassifier(nn.Module):
    """An image model with its classification head: `forward(pixel_values)` returns the logits of the model's
    own forward."""

    task = "classification"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def config(self) -> Any:
        return self.model.config

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def hidden_size(config: Any) -> int:
    """The hidden width (`dim` in DistilBERT's config)."""
    return int(getattr(config, "hidden_size", None) or config.dim)


class FactorizedEmbedding(nn.Module):
    """A word table of width `embedding_size` projected up to the hidden width (ALBERT's factorization):
    `vocab × e + e × hidden` parameters instead of `vocab × hidden`. `table` keeps the token ids."""

    def __init__(self, vocab: int, embedding_size: int, hidden: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.table = nn.Embedding(vocab, embedding_size, padding_idx=padding_idx)
        self.project = nn.Linear(embedding_size, hidden, bias=False)

    @property
    def weight(self) -> torch.Tensor:
        """The table's weight: rows are tokens, as for an `nn.Embedding`."""
        return self.table.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.table(input_ids))


def word_table(model: Encoder) -> nn.Embedding:
    """The embedding whose rows are the tokens (inside a factorized word embedding, its table)."""
    embedding = model.model.get_input_embeddings()
    return embedding.table if isinstance(embedding, FactorizedEmbedding) else embedding


def _auto(task: str) -> Any:
    from transformers import AutoModel, AutoModelForImageClassification, AutoModelForSequenceClassification

    return {"sentence-embedding": AutoModel, "sequence-classification": AutoModelForSequenceClassification,
            "image-classification": AutoModelForImageClassification}[task]


def _model_class(auto: Any, config: Any) -> type | None:
    """The class `auto` builds for `config`, or None when it has none for this model type."""
    try:
        return auto._model_mapping[type(config)]
    except KeyError:
        return None


def _body_kwargs(cls: type, task: str) -> dict[str, Any]:
    """Sentence embeddings pool the hidden states themselves: no pooler layer where the class has one."""
    accepts = "add_pooling_layer" in inspect.signature(cls.__init__).parameters
    return {"add_pooling_layer": False} if task == "sentence-embedding" and accepts else {}


def text_task(task: str) -> str:
    """The Auto-class task of an `Encoder.task`."""
    return "sequence-classification" if task == "classification" else "sentence-embedding"


def _config(config: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    values = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version", "_attn_implementation_autoset")}
    return AutoConfig.for_model(config.get("model_type", "bert"), **values)


def build(config: dict[str, Any], task: str, normalize: bool = True, output_size: int | None = None) -> Encoder:
    """A fresh text encoder (random weights) from a config dict, with eager attention. A BERT config with
    `embedding_size` below `hidden_size` gets a factorized word embedding (`FactorizedEmbedding`)."""
    cfg = _config(config)
    cfg._attn_implementation = "eager"
    auto = _auto(text_task(task))
    cls = _model_class(auto, cfg)
    body = auto.from_config(cfg, attn_implementation="eager", **(_body_kwargs(cls, text_task(task)) if cls else {}))
    width = config.get("embedding_size")
    if config.get("model_type", "bert") != "mobilebert" and width and int(width) < int(cfg.hidden_size):
        body.set_input_embeddings(FactorizedEmbedding(int(cfg.vocab_size), int(width), int(cfg.hidden_size), cfg.pad_token_id))
    return Encoder(body, task, normalize, output_size).eval()


def build_image_classifier(config: dict[str, Any]) -> ImageClassifier:
    """A fresh image classifier (random weights) from a config dict."""
    return ImageClassifier(_auto("image-classification").from_config(_config(config))).eval()


@dataclass(frozen=True)
class LoadReport:
    """What transformers said while loading: the class it built, the tensors it had to initialise (missing from
    the checkpoint, or there with another shape) and the checkpoint's tensors the model does not use."""

    architecture: str
    newly_initialised: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def load_folder(folder: Path, task: str, normalize: bool = True) -> Encoder:
    """The pretrained text model of a local folder for an `Encoder` task, whatever its loading report (tests)."""
    model, _ = load_pretrained(folder, text_task(task), normalize)
    assert isinstance(model, Encoder)
    return model


def load_pretrained(folder: Path, task: str, normalize: bool = True) -> tuple[Encoder | ImageClassifier, LoadReport]:
    """The pretrained model of a local folder (never the hub) through the Auto class of `task`
    (`sentence-embedding`, `sequence-classification`, `image-classification`), and its loading report. Text
    models get eager attention, so attention maps exist."""
    import transformers
    from transformers import AutoConfig

    transformers.logging.set_verbosity_error()  # the loading report is returned, and the caller acts on it
    transformers.utils.logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    auto = _auto(task)
    cls = _model_class(auto, config)
    if cls is None:
        raise UsageError(f"transformers {transformers.__version__} has no {task} model for model type "
                         f"{config.model_type!r} ({folder})",
                         hint="set model.task to what the model is for" if task != "image-classification" else None)
    kwargs: dict[str, Any] = {"local_files_only": True, "output_loading_info": True, **_body_kwargs(cls, task)}
    if task != "image-classification":
        kwargs["attn_implementation"] = "eager"
    body, info = cls.from_pretrained(str(folder), **kwargs)
    fresh = sorted({*info.get("missing_keys", ()), *(_key(m) for m in info.get("mismatched_keys", ()))})
    report = LoadReport(type(body).__name__, fresh, sorted(info.get("unexpected_keys", ())))
    if task == "image-classification":
        return ImageClassifier(body).eval(), report
    return Encoder(body, "classification" if task == "sequence-classification" else "sentence-embedding", normalize).eval(), report


def _key(mismatched: Any) -> str:
    """A mismatched-size entry's tensor name (transformers gives `(name, checkpoint shape, model shape)`)."""
    return str(mismatched[0] if isinstance(mismatched, (tuple, list)) else mismatched)


def config_dict(model: Encoder | ImageClassifier) -> dict[str, Any]:
    """The model's config as a plain dict (what rebuilds its architecture)."""
    return {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}


def bert_layout(model: nn.Module) -> bool:
    """BERT's layer structure (`encoder.layer[i].attention.self`), which head pruning and TinyBERT reach into."""
    if not isinstance(model, Encoder):
        return False
    layers = getattr(getattr(model.bert, "encoder", None), "layer", None)
    return bool(layers) and all(hasattr(getattr(layer, "attention", None), "self") for layer in layers)


def head_counts(model: Encoder) -> list[int] | None:
    """Attention heads per layer, read from the modules (what pruning would change); None when the encoder's
    layers are not BERT's."""
    if not bert_layout(model):
        return None
    return [int(layer.attention.self.num_attention_heads) for layer in model.bert.encoder.layer]


@torch.no_grad()
def embed(model: nn.Module, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Model outputs for tokenized rows, batch by batch, each batch trimmed to its longest row."""
    model.eval()
    outs = []
    for start in range(0, len(ids), batch_size):
        m = mask[start:start + batch_size]
        length = max(int(m.sum(1).max()), 1)
        outs.append(model(torch.from_numpy(np.ascontiguousarray(ids[start:start + batch_size, :length])),
                          torch.from_numpy(np.ascontiguousarray(m[:, :length]))).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)


# the pass cache --------------------------------------------------------------------------------------

def save(model: nn.Module, directory: Path) -> dict[str, Any] | None:
    """The state_dict plus what rebuilds the architecture from the config (weights_only loading): an encoder's
    per-layer head counts and FFN widths, an image classifier's layer widths (after channel pruning; never
    `save_pretrained`, which fails on pruned models). None when the rebuild would not match (not cached)."""
    from shrink_common.widths import record_shapes

    if isinstance(model, ImageClassifier):
        widths = record_shapes(model)
        descriptor = {"kind": "hf-image-classifier", "file": "weights.pt", "config": config_dict(model), "widths": widths}
        fresh = rebuild_image_classifier(descriptor["config"], widths)
        if _shapes(fresh) != _shapes(model):  # a pruned structure the widths do not capture
            return None
    elif isinstance(model, Encoder):
        from shrink_huggingface.heads import ffn_sizes

        layout = bert_layout(model)
        descriptor = {"kind": "hf-encoder", "file": "weights.pt", "config": config_dict(model), "task": model.task,
                      "normalize": model.normalize, "output_size": model.output_size,  # per-layer widths after pruning:
                      "heads": head_counts(model), "ffn_sizes": ffn_sizes(model) if layout else None}
    else:
        return None
    torch.save(model.state_dict(), directory / "weights.pt")
    return descriptor


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def rebuild_image_classifier(config: dict[str, Any], widths: dict[str, dict[str, int]] | None) -> ImageClassifier:
    """The architecture of a (possibly channel-pruned) image classifier from its config and recorded widths."""
    from shrink_common.widths import resize_modules

    model = build_image_classifier(dict(config))
    try:
        resize_modules(model, widths or {})
    except KeyError as exc:
        raise UsageError(f"the image classifier has no module {exc.args[0]!r} to resize") from None
    return model.eval()


def restore(descriptor: dict[str, Any], directory: Path) -> nn.Module:
    from shrink_huggingface.heads import resize

    try:
        if descriptor.get("kind") == "hf-image-classifier":
            model: nn.Module = rebuild_image_classifier(descriptor["config"], descriptor.get("widths"))
        else:
            model = build(dict(descriptor["config"]), str(descriptor["task"]), bool(descriptor.get("normalize", True)),
                          descriptor.get("output_size"))
            if descriptor.get("heads") is not None or descriptor.get("ffn_sizes") is not None:
                resize(model, descriptor.get("heads"), descriptor.get("ffn_sizes"))
        state = torch.load(directory / descriptor["file"], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise UsageError(f"the cached model cannot be restored: {str(exc).splitlines()[0]}") from None
    return model.eval()
