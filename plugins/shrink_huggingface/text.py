"""The `text` dataset: sentences for distilling and evaluating text encoders (no labels)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import DataProvider, Dataset, PassOptions, PlanContext, Split
from shrink.api.context import Context
from shrink.api.preprocessing import RECORD_VERSION


class TextDataOptions(PassOptions):
    """Options of the `text` data source."""

    corpus: Literal["packages", "none"] = Field(
        "packages", description="'packages': train on the built-in offline corpus ('train_sources'); "
                                "'none': only the sentences of 'file'")
    train_sources: list[Literal["stdlib", "reference", "site-packages", "comments", "templates", "conversations"]] = Field(
        ["stdlib"], min_length=1, description="built-in training sources (corpus 'packages'): 'stdlib' (the standard "
        "library's docstrings), 'reference' (the language reference in pydoc_data), 'site-packages' (installed "
        "distributions' docstrings, never their descriptions), 'comments' (the '#' comments of the standard library's "
        "and installed distributions' code), 'templates' (generated everyday requests and remarks) and 'conversations' "
        "(the English dialogues of the chatterbot-corpus package: everyday questions and answers)")
    file: str | SkipJsonSchema[None] = Field(None, min_length=1, description="your own training sentences, one per line "
                                             "(relative to the recipe); added to the corpus")
    eval_file: str | SkipJsonSchema[None] = Field(None, min_length=1, description="your own held-out sentences, one per line; "
                                                  "replaces the built-in held-out sources")
    eval_sources: list[Literal["packages", "requests"]] = Field(
        ["packages", "requests"], min_length=1, description="built-in held-out sources: 'packages' (installed packages' "
                                                             "descriptions) and 'requests' (short spoken-style requests)")
    train_size: Annotated[int, Field(ge=1, le=1_000_000)] | SkipJsonSchema[None] = Field(
        None, description="use at most this many training sentences (default: all)")
    eval_size: int = Field(800, ge=1, le=100_000, description="at most this many held-out sentences")
    calibration_size: int = Field(200, ge=1, le=100_000, description="calibration sentences (taken from train)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the sentence order")

    @model_validator(mode="after")
    def _consistent(self) -> TextDataOptions:
        if self.corpus == "none" and self.file is None:
            raise ValueError("corpus 'none' needs 'file' (your training sentences)")
        if self.eval_file is not None and "eval_sources" in self.model_fields_set:
            raise ValueError("give either 'eval_file' or 'eval_sources'")
        if len(set(self.train_sources)) != len(self.train_sources):
            raise ValueError("train_sources has duplicates")
        if self.corpus == "none" and "train_sources" in self.model_fields_set:
            raise ValueError("train_sources needs corpus 'packages'")
        return self


class TextData(DataProvider[TextDataOptions]):
    """Sentences for text encoders: a built-in offline English corpus or your own file; held-out eval from other sources."""

    name = "text"
    splits = ("train", "calibration", "eval")
    labels = False

    def check(self, plan: PlanContext) -> list[str]:
        from importlib.util import find_spec

        from shrink_huggingface.corpus import CONVERSATIONS_INSTALL

        opts = self.options
        problems = [f"{key} {str(plan.path(value))!r} does not exist" for key, value in (("file", opts.file), ("eval_file", opts.eval_file))
                    if value is not None and not plan.path(value).is_file()]
        if opts.corpus == "packages" and "conversations" in opts.train_sources and find_spec("chatterbot_corpus") is None:
            problems.append(f"train_sources: 'conversations' needs the chatterbot-corpus package ({CONVERSATIONS_INSTALL})")
        return problems

    def fingerprint(self, ctx: Context) -> str | None:
        """The options, the user's files and a digest of the corpus sources (file sizes, package versions)."""
        from shrink_huggingface import corpus

        opts = self.options
        digest = hashlib.sha256(opts.model_dump_json().encode())
        for value in (opts.file, opts.eval_file):
            if value is not None:
                digest.update(ctx.path(value).read_bytes())
        if opts.corpus == "packages" or (opts.eval_file is None and "packages" in opts.eval_sources):
            digest.update(corpus.source_digest().encode())
        return "quick-" + digest.hexdigest()

    def preprocessing(self, ctx: Context, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Unlabelled sentences (a `text` record; the family adds its tokenizer)."""
        return {"version": RECORD_VERSION, "kind": "text", "source": self.name, "task": None, "labels": None,
                "columns": {"text": "text", "label": None}, "tokenizer": None, "inputs": {}}

    def load(self, ctx: Context) -> Dataset:
        from shrink import UsageError
        from shrink_huggingface import corpus

        opts = self.options
        train: list[str] = []
        sources = []
        counts: dict[str, int] = {}
        if opts.corpus == "packages":
            for source in opts.train_sources:
                found = corpus.train_sentences(source)
                train += found
                sources.append(source)
                counts[source] = len(found)
        if opts.file is not None:
            mine = corpus.read_file(ctx.path(opts.file))
            train += mine
            sources.append(opts.file)
            counts[opts.file] = len(mine)
        if opts.eval_file is not None:
            held_out = corpus.dedupe(corpus.read_file(ctx.path(opts.eval_file)))
            groups = {opts.eval_file: len(held_out)}
        else:
            parts = {"packages": lambda: list(corpus.package_sentences()), "requests": corpus.requests}
            held_out, groups = [], {}
            for source in opts.eval_sources:
                items = corpus.dedupe(parts[source](), {s.lower() for s in held_out})
                held_out += items
                groups[source] = len(items)
        held_keys = {s.lower() for s in held_out}
        unique = corpus.dedupe(train)
        train = corpus.dedupe(unique, held_keys)  # never train on a held-out sentence
        dropped = len(unique) - len(train)
        train = corpus.shuffled(train, opts.seed)
        if opts.train_size is not None:
            train = train[:opts.train_size]
        if len(held_out) > opts.eval_size:  # keep every group represented: an even sample of the ordered list
            step = len(held_out) / opts.eval_size
            picked = [int(i * step) for i in range(opts.eval_size)]
            index_groups = _group_of(groups)
            held_out = [held_out[i] for i in picked]
            groups = {}
            for i in picked:
                groups[index_groups[i]] = groups.get(index_groups[i], 0) + 1
        if not train:
            raise UsageError("the text dataset has no training sentences (5–60 words each) in its sources")
        if not held_out:
            raise UsageError("the text dataset has no held-out sentences")
        splits = {"train": Split(tuple(train)), "calibration": Split(tuple(train[:opts.calibration_size])),
                  "eval": Split(tuple(held_out))}
        digest = hashlib.sha256()
        for name in sorted(splits):
            digest.update(name.encode() + b"\0" + "\n".join(splits[name].inputs).encode())
        return Dataset(self.name, "text", splits, digest.hexdigest(),
                       {"train_sources": sources, "train_source_sizes": counts, "dropped_as_held_out": dropped,
                        "eval_groups": groups, "sizes": {k: len(v) for k, v in splits.items()}})

def _group_of(groups: dict[str, int]) -> list[str]:
    out: list[str] = []
    for name, count in groups.items():
        out += [name] * count
    return out
