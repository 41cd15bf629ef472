"""Built-in Hugging Face plugin: the `huggingface` model source (BERT-family encoders from a local
folder), the `text` dataset, `distill.tinybert`, `distill.mobilebert`, `prune.embeddings`, held-out fidelity metrics for sentence encoders, and
pass-cache support for encoders. torch, transformers and tokenizers are imported only when used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shrink import Artifact, Context, DataProvider, Pass, Source, hookimpl
from shrink_huggingface.mobilebert import DistillMobileBERT
from shrink_huggingface.source import HuggingFaceSource
from shrink_huggingface.text import TextData
from shrink_huggingface.tinybert import DistillTinyBERT
from shrink_huggingface.embeddings import PruneEmbeddings


@hookimpl
def shrink_register_sources() -> list[type[Source]]:
    return [HuggingFaceSource]


@hookimpl
def shrink_register_datasets() -> list[type[DataProvider]]:
    return [TextData]


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [DistillTinyBERT, DistillMobileBERT, PruneEmbeddings]


@hookimpl
def shrink_measure_artifact(artifact: Artifact, ctx: Context) -> dict[str, Any] | None:
    if artifact.meta.get("task") != "sentence-embedding" or not artifact.meta.get("tokenizer"):
        return None
    from shrink_huggingface.metrics import measure

    return measure(artifact, ctx)


@hookimpl
def shrink_save_artifact(artifact: Artifact, directory: Path, ctx: Context) -> dict[str, Any] | None:
    if artifact.format != "torch" or not artifact.meta.get("hf_config"):
        return None
    from shrink_huggingface.model import Encoder, save

    return save(artifact.model, directory) if isinstance(artifact.model, Encoder) else None


@hookimpl
def shrink_load_artifact(format: str, descriptor: dict[str, Any], directory: Path, meta: dict[str, Any], ctx: Context) -> Any:
    if format != "torch" or descriptor.get("kind") != "hf-encoder":
        return None
    from shrink_huggingface.model import restore

    return restore(descriptor, directory)
