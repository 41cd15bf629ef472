"""The torch side of `prune.embeddings`: slice the word and position tables, prove the outputs unchanged."""

from __future__ import annotations

import copy
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from shrink import Artifact, Context, UsageError
from shrink_huggingface.embeddings import emitted, probes, renumbered_files, unreachable
from shrink_huggingface.model import Encoder, FactorizedEmbedding, config_dict, embed, word_table
from shrink_huggingface.tokens import artifact_tokenizer, encode, load_tokenizer

if TYPE_CHECKING:
    from shrink_huggingface.embeddings import PruneEmbeddingsOptions


def _check_texts(ctx: Context, count: int) -> list[str]:
    texts: list[str] = []
    if ctx.data is None or not count:
        return texts
    for name in ctx.data.splits:
        raw = ctx.data.split(name).inputs
        if len(raw) and isinstance(raw[0], str):
            texts += list(raw[:count])
    return texts


def _sliced(table: nn.Embedding, rows: list[int] | int, padding_idx: int | None) -> nn.Embedding:
    index = torch.tensor(rows) if isinstance(rows, list) else torch.arange(rows)
    new = nn.Embedding(len(index), table.weight.shape[1], padding_idx=padding_idx)
    with torch.no_grad():
        new.weight.copy_(table.weight[index])
    return new


def unreachable_tokens(tokenizer: Any, rows: int, checked: list[str]) -> tuple[dict[int, str], int]:
    """`({row: reason}, rows the rules flagged that one of the `checked` texts reached and so stay)`."""
    reasons = unreachable(tokenizer)
    reasons.update({i: "beyond the tokenizer's vocabulary" for i in range(tokenizer.get_vocab_size(with_added_tokens=True), rows)})
    reached = emitted(tokenizer, checked, set(reasons))
    for index in reached:
        del reasons[index]
    return reasons, len(reached)


def prune_embeddings(opts: PruneEmbeddingsOptions, artifact: Artifact, ctx: Context) -> Artifact:
    tokenizer = artifact_tokenizer(artifact)
    source: Encoder = artifact.model
    model = copy.deepcopy(source)
    embeddings = model.bert.embeddings
    rows = int(word_table(model).weight.shape[0])
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if vocab > rows:
        raise UsageError(f"prune.embeddings: the tokenizer has {vocab} tokens but the embedding table {rows} rows")
    max_length = int(artifact.meta.get("max_length", 128))
    texts = _check_texts(ctx, opts.check_sentences)
    if texts:  # and one input of exactly max_length tokens, the longest the tokenizer lets through
        texts.append(" ".join(texts))
    checked = probes(tokenizer) + texts  # every token alone and between neighbours, and the data
    details: dict[str, Any] = {"checked_sentences": len(texts)}
    meta: dict[str, Any] = {}
    removed_params = 0

    keep = list(range(rows))
    if opts.tokens:
        ctx.report(0.05, "finding tokens the tokenizer cannot emit")
        reasons, reached = unreachable_tokens(tokenizer, rows, checked)
        keep = [i for i in range(rows) if i not in reasons]
        details["tokens"] = {"vocab_before": rows, "vocab_after": len(keep), "removed": rows - len(keep),
                             "removed_by_reason": dict(sorted(Counter(reasons.values()).items())), "kept_after_probing": reached,
                             "examples": {reason: [tokenizer.id_to_token(i) for i in sorted(i for i, r in reasons.items() if r == reason)[:6]]
                                          for reason in sorted(set(reasons.values()))}}
        if len(keep) < rows:
            old = word_table(model)
            new_id = {o: n for n, o in enumerate(keep)}
            pad = new_id.get(old.padding_idx) if old.padding_idx is not None else None
            embedding = model.model.get_input_embeddings()
            if isinstance(embedding, FactorizedEmbedding):
                embedding.table = _sliced(old, keep, pad)
            else:
                model.model.set_input_embeddings(_sliced(old, keep, pad))
            model.config.vocab_size = len(keep)
            for key, value in list(model.config.to_dict().items()):  # pad/bos/eos/sep/cls ids: special tokens, always kept
                if key.endswith("_token_id") and isinstance(value, int) and value in new_id:
                    setattr(model.config, key, new_id[value])
            removed_params += (rows - len(keep)) * int(old.weight.shape[1])
            meta["inputs"] = [dict(spec, range=[0, len(keep)]) if spec.get("name") == "input_ids" else spec
                              for spec in artifact.meta["inputs"]]

    trimmed = False
    if opts.positions:
        table = getattr(embeddings, "position_embeddings", None)
        if not isinstance(table, nn.Embedding):
            raise UsageError("prune.embeddings: this encoder has no learned position table (positions: true)")
        before = int(table.weight.shape[0])
        # RoBERTa-style models number positions from padding_idx + 1
        needed = max_length + (table.padding_idx + 1 if table.padding_idx is not None else 0)
        if needed < before:
            embeddings.position_embeddings = _sliced(table, needed, table.padding_idx)
            for name, buffer in list(embeddings.named_buffers(recurse=False)):
                if buffer.dim() and buffer.shape[-1] == before:  # position_ids / token_type_ids, arange'd over positions
                    setattr(embeddings, name, buffer[..., :needed].clone())
            model.config.max_position_embeddings = needed
            removed_params += (before - needed) * int(table.weight.shape[1])
            trimmed = True
        details["positions"] = {"before": before, "after": min(before, needed), "max_length": max_length}

    if len(keep) < rows or trimmed:
        files = renumbered_files(dict(artifact.meta["bundle_files"]), [i for i in keep if i < vocab],
                                 max_length if trimmed else None, ctx)
        meta["bundle_files"] = dict(sorted(files.items()))
        renamed = load_tokenizer(files[artifact.meta["tokenizer"]], max_length)
        ctx.report(0.5, f"checking that the renumbered tokenizer reproduces {len(checked)} tokenizations")
        tokenizer.enable_truncation(max_length=max_length)
        ids_old, mask_old = encode(tokenizer, checked)
        ids_new, mask_new = encode(renamed, checked)
        remap = np.zeros(rows, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        if not (np.array_equal(mask_old, mask_new) and np.array_equal(remap[ids_old] * mask_old, ids_new * mask_new)):
            raise RuntimeError("the renumbered tokenizer does not reproduce the original token ids")
        if texts:
            ctx.report(0.7, f"checking that {len(texts)} sentences give the same outputs")
            ids_old, mask_old = encode(tokenizer, texts)
            ids_new, mask_new = encode(renamed, texts)
            diff = float(np.abs(embed(source, ids_old, mask_old) - embed(model, ids_new, mask_new)).max())
            if diff > 1e-5:
                raise RuntimeError(f"outputs changed by up to {diff:.3g} after removing unreachable rows")
            details["max_abs_diff"] = diff
    details["params_removed"] = removed_params
    meta["hf_config"] = config_dict(model)
    return artifact.evolve(model=model.eval(), meta=meta, details=details)
