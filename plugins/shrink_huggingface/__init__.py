"""Built-in Hugging Face plugin: the `huggingface` model family and source (BERT-family encoders from a
local folder), the `text` dataset, `distill.tinybert`, `distill.quantization_aware`, `distill.mobilebert` and
`prune.embeddings`.
torch, transformers and tokenizers are imported only when used."""

from __future__ import annotations

from shrink import DataProvider, ModelFamily, Pass, Source, hookimpl
from shrink_huggingface.embeddings import PruneEmbeddings
from shrink_huggingface.family import HuggingFaceFamily
from shrink_huggingface.mobilebert import DistillMobileBERT
from shrink_huggingface.quantization_aware import DistillQuantizationAware
from shrink_huggingface.source import HuggingFaceSource
from shrink_huggingface.text import TextData
from shrink_huggingface.tinybert import DistillTinyBERT


@hookimpl
def shrink_register_sources() -> list[type[Source]]:
    return [HuggingFaceSource]


@hookimpl
def shrink_register_datasets() -> list[type[DataProvider]]:
    return [TextData]


@hookimpl
def shrink_register_passes() -> list[type[Pass]]:
    return [DistillTinyBERT, DistillQuantizationAware, DistillMobileBERT, PruneEmbeddings]


@hookimpl
def shrink_register_families() -> list[type[ModelFamily]]:
    return [HuggingFaceFamily]
