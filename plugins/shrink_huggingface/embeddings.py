"""`prune.embeddings`: remove embedding rows that no input can reach.

Token rows: a BERT WordPiece vocabulary carries tokens no input can reach: `[unused*]` placeholders (the
pre-tokenizer splits `[` and `]` off as punctuation), tokens with characters the normalizer rewrites
(upper case and accents in an uncased vocabulary), continuation pieces that start with a character
the pre-tokenizer always isolates (`##!`, `##中`), and multi-character tokens holding one. Their rows
are dead weight: 1,331 of MiniLM's 30,522 (4%). The pass finds them with the tokenizer's own
normalizer and pre-tokenizer, confirms that tokenizing probes built from every token and the data's
sentences never produces one, renumbers the vocabulary, rewrites the tokenizer files that travel
into the bundle and slices the embedding table. Outputs are unchanged for every input; the pass
checks that on the data's sentences and fails otherwise.

Position rows (option `positions`): the bundle's tokenizer truncates to the model's `max_length`, so
rows of the position table past it are never read; without them an input longer than `max_length`
fails in the runtime instead of running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from shrink import Artifact, Context, Pass, PassOptions, PlanContext, UsageError

PROBE_CHARS = "a1"  # neighbours that the normalizer keeps and the pre-tokenizer never splits off


def _normalize(tokenizer: Any, text: str) -> str:
    return tokenizer.normalizer.normalize_str(text) if tokenizer.normalizer is not None else text


def _pieces(tokenizer: Any, text: str) -> list[str]:
    normalized = _normalize(tokenizer, text)
    if tokenizer.pre_tokenizer is None:
        return normalized.split()
    return [piece for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized)]


def unreachable(tokenizer: Any) -> dict[int, str]:
    """Ids of WordPiece tokens that no text can produce, each with the reason: `{id: reason}`.

    A character can occur in a pre-token only if normalizing it keeps it; a character is *isolated* when
    the pre-tokenizer always makes it a pre-token of its own (punctuation; CJK, which the normalizer
    surrounds with spaces). A token is unreachable when it holds a character that cannot occur, holds
    an isolated character beside another, or (a `##` piece) starts with an isolated character."""
    spec = json.loads(tokenizer.to_str())
    model = spec["model"]
    kinds = (model.get("type"), (spec.get("normalizer") or {}).get("type", "BertNormalizer"),
             (spec.get("pre_tokenizer") or {}).get("type"))
    # the rules hold for BERT's splitting, where a punctuation or CJK character is a pre-token of its own
    # whatever its neighbours; other pre-tokenizers (Whitespace groups "!!") would make them unsound
    if kinds != ("WordPiece", "BertNormalizer", "BertPreTokenizer"):
        raise UsageError("prune.embeddings handles BERT WordPiece tokenizers (WordPiece model, BertNormalizer, "
                         f"BertPreTokenizer); this one has {' / '.join(str(k) for k in kinds)}")
    prefix = str(model.get("continuing_subword_prefix") or "##")
    special = {int(i) for i in tokenizer.get_added_tokens_decoder()}
    occurs: dict[str, bool] = {}
    isolated: dict[str, bool] = {}

    def can_occur(char: str) -> bool:
        if char not in occurs:
            occurs[char] = char in _normalize(tokenizer, char) and not char.isspace()
        return occurs[char]

    def is_isolated(char: str) -> bool:
        if char not in isolated:
            a, b = PROBE_CHARS
            isolated[char] = _pieces(tokenizer, f"{a}{char}{b}") != [_normalize(tokenizer, f"{a}{char}{b}")]
        return isolated[char]

    found: dict[int, str] = {}
    for token, index in model["vocab"].items():
        index = int(index)
        if index in special:
            continue
        continuation = token.startswith(prefix) and len(token) > len(prefix)
        body = token[len(prefix):] if continuation else token
        if not all(can_occur(c) for c in body):
            found[index] = "normalized away"
        elif len(body) > 1 and any(is_isolated(c) for c in body):
            found[index] = "split by the pre-tokenizer"
        elif continuation and is_isolated(body[0]):
            found[index] = "continuation of an isolated character"
    return found


def probes(tokenizer: Any) -> list[str]:
    """Texts that reach every token that can be reached: each token alone and between neighbours."""
    model = json.loads(tokenizer.to_str())["model"]
    prefix = str(model.get("continuing_subword_prefix") or "##")
    a, b = PROBE_CHARS
    texts = []
    for token in model["vocab"]:
        body = token[len(prefix):] if token.startswith(prefix) and len(token) > len(prefix) else token
        texts += [body, f"{a}{body}", f"{body}{b}", f"{a}{body}{b}", f"x {body}."]
    return texts


def emitted(tokenizer: Any, texts: list[str], candidates: set[int]) -> set[int]:
    """Which of `candidates` the tokenizer emits for any of `texts`."""
    hits: set[int] = set()
    for start in range(0, len(texts), 4096):
        for encoding in tokenizer.encode_batch(texts[start:start + 4096], add_special_tokens=False):
            hits.update(i for i in encoding.ids if i in candidates)
    return hits


def _renumber_processor(processor: dict[str, Any], new_id: dict[int, int]) -> None:
    for entry in (processor.get("special_tokens") or {}).values():  # TemplateProcessing
        entry["ids"] = [new_id[int(i)] for i in entry["ids"]]
    for key in ("sep", "cls"):  # BertProcessing / RobertaProcessing
        if isinstance(processor.get(key), list):
            processor[key][1] = new_id[int(processor[key][1])]
    for inner in processor.get("processors") or []:  # Sequence
        _renumber_processor(inner, new_id)


def renumbered_files(files: dict[str, str], keep: list[int], max_length: int | None, ctx: Context) -> dict[str, str]:
    """New copies of the tokenizer files with the kept tokens renumbered 0..len(keep)-1, in order; with
    `max_length`, truncating there (the position table ends there)."""
    new_id = {old: new for new, old in enumerate(keep)}
    out = dict(files)
    spec = json.loads(Path(files["tokenizer.json"]).read_text(encoding="utf-8"))
    spec["model"]["vocab"] = {tok: new_id[int(i)] for tok, i in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
                              if int(i) in new_id}
    for added in spec.get("added_tokens") or []:
        added["id"] = new_id[int(added["id"])]
    _renumber_processor(spec.get("post_processor") or {}, new_id)
    if isinstance(spec.get("padding"), dict) and "pad_id" in spec["padding"]:
        spec["padding"]["pad_id"] = new_id[int(spec["padding"]["pad_id"])]
    if max_length is not None and isinstance(spec.get("truncation"), dict):
        spec["truncation"]["max_length"] = min(int(spec["truncation"].get("max_length") or max_length), max_length)
    path = ctx.new_path("tokenizer", ".json")
    path.write_text(json.dumps(spec, ensure_ascii=False, indent=2), encoding="utf-8")
    out["tokenizer.json"] = str(path)
    if "vocab.txt" in files:
        ordered = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
        path = ctx.new_path("vocab", ".txt")
        path.write_text("".join(tok + "\n" for tok, _ in ordered), encoding="utf-8")
        out["vocab.txt"] = str(path)
    if "tokenizer_config.json" in files:
        config = json.loads(Path(files["tokenizer_config.json"]).read_text(encoding="utf-8"))
        if isinstance(config.get("added_tokens_decoder"), dict):
            config["added_tokens_decoder"] = {str(new_id[int(k)]): v for k, v in config["added_tokens_decoder"].items()
                                              if int(k) in new_id}
        if max_length is not None and int(config.get("model_max_length") or max_length) > max_length:
            config["model_max_length"] = max_length
        path = ctx.new_path("tokenizer_config", ".json")
        path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        out["tokenizer_config.json"] = str(path)
    return out


class PruneEmbeddingsOptions(PassOptions):
    """Options of the `prune.embeddings` pass."""

    tokens: bool = Field(True, description="remove the rows of tokens the tokenizer can never emit (outputs unchanged)")
    positions: bool = Field(False, description="remove the position rows past the model's max_length (the "
                            "tokenizer truncates there; a longer input then fails instead of running)")
    check_sentences: int = Field(200, ge=0, le=1_000_000, description="sentences of each data split tokenized and "
                                 "embedded before and after: the removed tokens must never appear and the outputs "
                                 "must match (0: the probe check only)")

    @model_validator(mode="after")
    def _something(self) -> PruneEmbeddingsOptions:
        if not (self.tokens or self.positions):
            raise ValueError("nothing to do: set 'tokens' or 'positions'")
        return self


class PruneEmbeddings(Pass[PruneEmbeddingsOptions]):
    """Drop embedding rows no input can reach: tokens the tokenizer never emits, positions past max_length."""

    name = "prune.embeddings"
    consumes = ("torch",)
    produces = "torch"

    def check(self, plan: PlanContext) -> list[str]:
        from shrink_huggingface.support import text_encoder_problems

        return text_encoder_problems(plan, self.name, wordpiece=True)

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        if not artifact.meta.get("hf_config") or not artifact.meta.get("tokenizer"):
            raise UsageError("prune.embeddings needs a Hugging Face encoder with its tokenizer (model source 'huggingface')")
        from shrink_huggingface.embeddings_torch import prune_embeddings

        return prune_embeddings(self.options, artifact, ctx)
