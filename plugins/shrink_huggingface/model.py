"""torch side of the Hugging Face family: the encoder wrapper, loading a model folder, embedding text,
and saving/restoring encoders for the pass cache. Imported only from `load()`, `run()` and hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shrink import UsageError


class Encoder(nn.Module):
    """A BERT-family encoder with its head: `forward(input_ids, attention_mask)` returns the embedding
    (task `sentence-embedding`: mean pooling over the mask, L2-normalised) or the logits (`classification`).
    `output_size` different from the hidden width adds a linear projection of the pooled embedding (a
    narrow student then still embeds into its teacher's space)."""

    def __init__(self, model: nn.Module, task: str, normalize: bool = True, output_size: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.normalize = normalize
        hidden = int(model.config.hidden_size)
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
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def head(self, output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            pooled = output.pooler_output if output.pooler_output is not None else output.last_hidden_state[:, 0]
            model: Any = self.model
            return model.classifier(model.dropout(pooled))
        hidden = output.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.projection is not None:
            pooled = self.projection(pooled)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(input_ids, attention_mask), attention_mask)


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


def build(config: dict[str, Any], task: str, normalize: bool = True, output_size: int | None = None) -> Encoder:
    """A fresh encoder (random weights) from a config dict, with eager attention. A BERT config with
    `embedding_size` below `hidden_size` gets a factorized word embedding (`FactorizedEmbedding`)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    values = {k: v for k, v in config.items() if k not in ("model_type", "transformers_version", "_attn_implementation_autoset")}
    cfg = AutoConfig.for_model(config.get("model_type", "bert"), **values)
    cfg._attn_implementation = "eager"
    if task == "classification":
        body = AutoModelForSequenceClassification.from_config(cfg, attn_implementation="eager")
    else:
        body = AutoModel.from_config(cfg, attn_implementation="eager", add_pooling_layer=False)
    width = config.get("embedding_size")
    if config.get("model_type", "bert") != "mobilebert" and width and int(width) < int(cfg.hidden_size):
        body.set_input_embeddings(FactorizedEmbedding(int(cfg.vocab_size), int(width), int(cfg.hidden_size), cfg.pad_token_id))
    return Encoder(body, task, normalize, output_size).eval()


def load_folder(folder: Path, task: str, normalize: bool = True) -> Encoder:
    """The pretrained model of a local folder (never the hub), with eager attention so attention maps exist."""
    import transformers
    from transformers import AutoModel, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"local_files_only": True, "attn_implementation": "eager"}
    if task == "classification":
        body = AutoModelForSequenceClassification.from_pretrained(str(folder), **kwargs)
    else:
        body = AutoModel.from_pretrained(str(folder), add_pooling_layer=False, **kwargs)
    return Encoder(body, task, normalize).eval()


def config_dict(model: Encoder) -> dict[str, Any]:
    return {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}


def head_counts(model: Encoder) -> list[int]:
    """Attention heads per layer, read from the modules (what pruning would change)."""
    layers = model.bert.encoder.layer
    return [int(layer.attention.self.num_attention_heads) for layer in layers]


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

def save(model: Encoder, directory: Path) -> dict[str, Any]:
    """The state_dict plus the config that rebuilds the architecture (weights_only loading)."""
    from shrink_huggingface.heads import ffn_sizes

    torch.save(model.state_dict(), directory / "weights.pt")
    return {"kind": "hf-encoder", "file": "weights.pt", "config": config_dict(model), "task": model.task,
            "normalize": model.normalize, "output_size": model.output_size,
            "heads": head_counts(model), "ffn_sizes": ffn_sizes(model)}  # per-layer widths after head/FFN pruning


def restore(descriptor: dict[str, Any], directory: Path) -> Encoder:
    from shrink_huggingface.heads import resize

    model = build(dict(descriptor["config"]), str(descriptor["task"]), bool(descriptor.get("normalize", True)),
                  descriptor.get("output_size"))
    try:
        resize(model, descriptor.get("heads"), descriptor.get("ffn_sizes"))
        state = torch.load(directory / descriptor["file"], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise UsageError(f"the cached encoder cannot be restored: {str(exc).splitlines()[0]}") from None
    return model.eval()
