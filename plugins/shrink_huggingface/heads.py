"""`prune.structured` for Hugging Face encoders: remove whole attention heads (and optionally FFN
intermediate channels) from a BERT-family encoder, write the new widths back into the modules, recover
with a KD fine-tune from the unpruned model, and check that the model rebuilds from its config plus
the recorded per-layer widths with `weights_only=True` loading.

transformers 5.x removed `PreTrainedModel.prune_heads`, `prune_linear_layer` and `config.pruned_heads`,
so the Q/K/V rows and the output projection's columns of the removed heads are sliced here (the
operation `prune_linear_layer` performed). Each attention module gets its `num_attention_heads` and
`all_head_size` rewritten (transformers 4.x reads both in its forward; 5.x reshapes with -1 heads of
`attention_head_size`, which pruning never changes). A config has one `num_attention_heads` for all
layers and it also fixes the head size (hidden / heads), so it keeps the unpruned value; the per-layer
counts live in the artifact's meta (`heads`, `ffn_sizes`), which `resize()` applies after `build()`.

Imported only from `run()` and the pass-cache hooks (it imports torch).
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from shrink import Artifact, Context, UsageError
from shrink_common.options import StructuredPruneOptions
from shrink_huggingface.model import Encoder, build, config_dict, embed, head_counts

# widths: reading, slicing, rebuilding -------------------------------------------------------------------

def layers_of(model: Encoder) -> nn.ModuleList:
    return model.bert.encoder.layer


def ffn_sizes(model: Encoder) -> list[int]:
    """Feed-forward intermediate width per layer, read from the modules."""
    return [int(layer.intermediate.dense.out_features) for layer in layers_of(model)]


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    out_features, in_features = weight.shape
    linear = nn.Linear(in_features, out_features, bias=bias is not None, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def keep_rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A Linear with only the output features `index`."""
    bias = linear.bias.detach()[index] if linear.bias is not None else None
    return _linear(linear.weight.detach()[index].clone(), None if bias is None else bias.clone())


def keep_columns(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A Linear with only the input features `index` (the bias is unchanged)."""
    bias = linear.bias.detach().clone() if linear.bias is not None else None
    return _linear(linear.weight.detach()[:, index].clone(), bias)


def head_size(model: Encoder) -> int:
    return int(layers_of(model)[0].attention.self.attention_head_size)


def keep_heads(layer: nn.Module, heads: list[int]) -> None:
    """Keep only `heads` (indices into the layer's current heads, ascending) of one encoder layer."""
    attention = layer.attention.self
    size = int(attention.attention_head_size)
    if not heads:
        raise ValueError("a layer must keep at least one attention head")
    index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in heads])
    attention.query = keep_rows(attention.query, index)
    attention.key = keep_rows(attention.key, index)
    attention.value = keep_rows(attention.value, index)
    layer.attention.output.dense = keep_columns(layer.attention.output.dense, index)
    attention.num_attention_heads = len(heads)
    attention.all_head_size = len(heads) * size


def keep_ffn(layer: nn.Module, channels: list[int]) -> None:
    """Keep only the intermediate channels `channels` (ascending) of one encoder layer."""
    if not channels:
        raise ValueError("a layer must keep at least one feed-forward channel")
    index = torch.tensor(channels, dtype=torch.long)
    layer.intermediate.dense = keep_rows(layer.intermediate.dense, index)
    layer.output.dense = keep_columns(layer.output.dense, index)


def resize(model: Encoder, heads: list[int] | None, ffn: list[int] | None) -> Encoder:
    """Give a freshly built encoder the recorded per-layer head counts and FFN widths (the values are
    placeholders until `load_state_dict`)."""
    layers = layers_of(model)
    for name, widths in (("heads", heads), ("ffn_sizes", ffn)):
        if widths is not None and len(widths) != len(layers):
            raise UsageError(f"recorded {name} has {len(widths)} entries for a {len(layers)}-layer encoder")
    for i, layer in enumerate(layers):
        if heads is not None and heads[i] != int(layer.attention.self.num_attention_heads):
            keep_heads(layer, list(range(int(heads[i]))))
        if ffn is not None and ffn[i] != int(layer.intermediate.dense.out_features):
            keep_ffn(layer, list(range(int(ffn[i]))))
    return model


def rebuild(config: dict[str, Any], task: str, normalize: bool, output_size: int | None,
            heads: list[int] | None, ffn: list[int] | None) -> Encoder:
    """The architecture of a (possibly pruned) encoder from its config and recorded widths."""
    return resize(build(dict(config), task, normalize, output_size), heads, ffn).eval()


# importance ---------------------------------------------------------------------------------------------

def magnitude_heads(model: Encoder) -> list[torch.Tensor]:
    """Per layer, each head's L2 norm over its Q/K/V rows (with biases) and output-projection columns."""
    scores = []
    for layer in layers_of(model):
        attention, out = layer.attention.self, layer.attention.output.dense
        heads, size = int(attention.num_attention_heads), int(attention.attention_head_size)
        total = torch.zeros(heads)
        for linear in (attention.query, attention.key, attention.value):
            w = linear.weight.detach().reshape(heads, size, -1).pow(2).sum((1, 2))
            b = linear.bias.detach().reshape(heads, size).pow(2).sum(1) if linear.bias is not None else 0
            total += w + b
        total += out.weight.detach().reshape(out.out_features, heads, size).pow(2).sum((0, 2))
        scores.append(total.sqrt())
    return scores


class HeadMask:
    """A multiplicative mask on each head's context vector, applied in front of the attention output
    projection (forward pre-hooks), so a head can be switched off without changing any weight."""

    def __init__(self, model: Encoder) -> None:
        self.masks = [torch.ones(int(layer.attention.self.num_attention_heads)) for layer in layers_of(model)]
        self.handles = [layer.attention.output.dense.register_forward_pre_hook(self._hook(i))
                        for i, layer in enumerate(layers_of(model))]

    def _hook(self, index: int) -> Any:
        def apply(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            x = inputs[0]
            mask = self.masks[index]
            if bool((mask == 1).all()):
                return inputs
            heads = mask.numel()
            shaped = x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads) * mask[:, None]
            return (shaped.reshape(x.shape), *inputs[1:])
        return apply

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def ablation_heads(model: Encoder, ids: np.ndarray, mask: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """Per layer, how much each head alone matters: 1 − mean cosine between the model's outputs with
    that head masked and its unmasked outputs (the KD/cosine loss of removing just that head)."""
    reference = torch.from_numpy(embed(model, ids, mask, batch_size))
    masker = HeadMask(model)
    scores = []
    try:
        for layer_mask in masker.masks:
            layer_scores = torch.zeros(layer_mask.numel())
            for h in range(layer_mask.numel()):
                layer_mask[h] = 0.0
                out = torch.from_numpy(embed(model, ids, mask, batch_size))
                layer_mask[h] = 1.0
                layer_scores[h] = float((1.0 - torch.nn.functional.cosine_similarity(out, reference, dim=-1)).mean())
            scores.append(layer_scores)
    finally:
        masker.close()
    return scores


def magnitude_ffn(model: Encoder) -> list[torch.Tensor]:
    """Per layer, each intermediate channel's ‖input row (with bias)‖ · ‖output column‖."""
    scores = []
    for layer in layers_of(model):
        up, down = layer.intermediate.dense, layer.output.dense
        rows = up.weight.detach().pow(2).sum(1) + (up.bias.detach().pow(2) if up.bias is not None else 0)
        scores.append(rows.sqrt() * down.weight.detach().norm(dim=0))
    return scores


@torch.no_grad()
def activation_ffn(model: Encoder, ids: np.ndarray, mask: np.ndarray, batch_size: int) -> list[torch.Tensor]:
    """Per layer, each intermediate channel's mean |activation| over real tokens · ‖output column‖."""
    sums = [torch.zeros(int(layer.intermediate.dense.out_features)) for layer in layers_of(model)]
    state: dict[str, torch.Tensor] = {}

    def keeper(index: int) -> Any:
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            tokens = state["mask"].reshape(-1).bool()
            sums[index] += output.reshape(-1, output.shape[-1])[tokens].abs().sum(0)
        return keep

    handles = [layer.intermediate.register_forward_hook(keeper(i)) for i, layer in enumerate(layers_of(model))]
    try:
        for start in range(0, len(ids), batch_size):
            m = mask[start:start + batch_size]
            length = max(int(m.sum(1).max()), 1)
            state["mask"] = torch.from_numpy(np.ascontiguousarray(m[:, :length]))
            model(torch.from_numpy(np.ascontiguousarray(ids[start:start + batch_size, :length])), state["mask"])
    finally:
        for handle in handles:
            handle.remove()
    tokens = max(int(mask.sum()), 1)
    return [s / tokens * layer.output.dense.weight.detach().norm(dim=0) for s, layer in zip(sums, layers_of(model))]


# choosing what to remove --------------------------------------------------------------------------------

def heads_to_remove(scores: list[torch.Tensor], ratio: float, global_pruning: bool, max_layer_ratio: float | None) -> list[list[int]]:
    """Per layer, the heads to remove (ascending): `ratio` of each layer's heads (rounded), or the
    globally least important `ratio` of all heads; every layer keeps at least one head, and with
    `max_layer_ratio` loses at most that fraction of its heads."""
    counts = [s.numel() for s in scores]
    caps = [n - 1 if max_layer_ratio is None else min(n - 1, int(math.floor(max_layer_ratio * n + 1e-9))) for n in counts]
    if not global_pruning:
        return [sorted(int(i) for i in torch.argsort(s, stable=True)[:min(cap, int(round(ratio * n)))])
                for s, n, cap in zip(scores, counts, caps)]
    target = int(round(ratio * sum(counts)))
    ranked = sorted(((float(s[h]), layer, h) for layer, s in enumerate(scores) for h in range(s.numel())))
    chosen: list[list[int]] = [[] for _ in scores]
    for _, layer, h in ranked:
        if sum(map(len, chosen)) >= target:
            break
        if len(chosen[layer]) < caps[layer]:
            chosen[layer].append(h)
    return [sorted(c) for c in chosen]


def channels_to_keep(scores: list[torch.Tensor], ratio: float, round_to: int | None) -> list[list[int]]:
    kept = []
    for s in scores:
        n = s.numel()
        keep = n - int(round(ratio * n))
        if round_to:
            keep = min(n, max(round_to, round_to * round(keep / round_to)))
        keep = max(1, keep)
        kept.append(sorted(int(i) for i in torch.argsort(s, descending=True, stable=True)[:keep]))
    return kept


# the pass -------------------------------------------------------------------------------------------------

def _tokens(artifact: Artifact, ctx: Context, splits: tuple[str, ...], count: int | None,
            max_length: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    from shrink_huggingface.tokens import artifact_tokenizer, encode, text_split

    found = text_split(ctx, splits)
    tokenizer = artifact_tokenizer(artifact)
    if found is None or tokenizer is None:
        return None
    texts = found[1][:count] if count else found[1]
    tokenizer.enable_truncation(max_length=max_length)
    ids, mask = encode(tokenizer, texts, pad_to=max_length)
    return found[0], ids, mask


def _cosine(outputs: np.ndarray, reference: np.ndarray) -> float:
    from shrink_huggingface.metrics import fidelity

    return fidelity(outputs, reference)["cosine"]


def finetune(model: Encoder, teacher: Encoder, ids: np.ndarray, mask: np.ndarray, opts: StructuredPruneOptions, lr: float, seed: int,
             ctx: Context) -> list[float]:
    """KD recovery: 1 − cosine to the unpruned model's sentence embeddings (T²·KL of the logits for
    classifiers), dropout off (eval mode; fidelity to the teacher is the goal). Mean loss per epoch."""
    from shrink_common.training import TrainConfig, make_optimizer, make_scheduler
    from shrink_huggingface.tinybert_train import length_batches, prediction_loss, token_epoch

    cfg = TrainConfig(epochs=opts.finetune_epochs, batch_size=opts.batch_size, lr=lr, optimizer=opts.optimizer,
                      weight_decay=opts.weight_decay, schedule=opts.schedule)
    optimizer = make_optimizer(model.parameters(), cfg)
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    teacher.eval()

    def loss_terms(x: torch.Tensor, xm: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = teacher(x, xm)
        return {"total": prediction_loss(model(x, xm), target, model.task, opts.temperature)}

    history = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(ids), generator=generator).numpy()
        means, _ = token_epoch(ids, mask, length_batches(order, mask, cfg.batch_size, generator), loss_terms,
                             optimizer, scheduler, ())
        mean = means["total"]
        if not math.isfinite(mean):
            raise FloatingPointError(f"the fine-tune loss became {mean} in epoch {epoch + 1}; lower lr")
        history.append(round(mean, 6))
        ctx.report(0.3 + 0.6 * (epoch + 1) / cfg.epochs, f"fine-tuning with KD: epoch {epoch + 1}/{cfg.epochs}, loss {mean:.4f}")
    model.eval()
    return history


def check_rebuild(model: Encoder, heads: list[int], ffn: list[int], lengths: list[int], vocab: int, seed: int) -> dict[str, Any]:
    """Rebuild from config + recorded widths, load the state_dict with weights_only=True, and compare
    outputs at several sequence lengths (which also exercises the pruned forward)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    try:
        fresh = rebuild(config_dict(model), model.task, model.normalize, model.output_size, heads, ffn)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
    except Exception as exc:  # reported: the pass's own model is fine in memory
        return {"status": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.no_grad():
        for length in lengths:
            ids = torch.randint(1, vocab, (2, length), generator=generator)
            mask = torch.ones_like(ids)
            mask[1, max(1, length // 2):] = 0
            a, b = model(ids, mask), fresh(ids, mask)
            if a.shape != b.shape or a.shape[0] != 2:
                return {"status": f"failed: output shapes {tuple(a.shape)} and {tuple(b.shape)} at length {length}"}
            worst = max(worst, float((a - b).abs().max()))
    status = "ok" if worst <= 1e-5 else f"failed: outputs differ by {worst:.3g}"
    return {"status": status, "lengths": lengths, "max_abs": worst}


def prune_encoder(opts: StructuredPruneOptions, artifact: Artifact, ctx: Context, who: str = "prune.structured") -> Artifact:
    """The encoder branch of `prune.structured`."""
    import copy

    from shrink_common.torch_setup import setup_torch

    if not isinstance(artifact.model, Encoder):
        raise UsageError(f"{who}: heads_ratio/ffn_ratio need a Hugging Face encoder (model source 'huggingface')")
    seed = ctx.seed + opts.seed
    setup_torch(seed)
    original: Encoder = artifact.model.eval()
    max_length = int(artifact.meta.get("max_length", 128))
    train = _tokens(artifact, ctx, ("train",), None, max_length)
    if train is None:
        raise UsageError(f"{who} on an encoder needs text sentences in the data's train split (data source 'text') "
                         "and the model's tokenizer")
    _, train_ids, train_mask = train
    held = _tokens(artifact, ctx, ("eval",), None, max_length) or ("train", train_ids[:256], train_mask[:256])
    held_name, held_ids, held_mask = held
    order = np.argsort(held_mask.sum(1), kind="stable")
    held_ids, held_mask = held_ids[order], held_mask[order]
    reference = embed(original, held_ids, held_mask)

    model = copy.deepcopy(original).eval()
    params_before = sum(p.numel() for p in model.parameters())
    heads_before, ffn_before = head_counts(model), ffn_sizes(model)
    sample = min(len(train_ids), opts.taylor_batches * opts.batch_size)
    started = time.perf_counter()
    details: dict[str, Any] = {"importance": opts.importance, "global_pruning": opts.global_pruning}
    removed: list[list[int]] = [[] for _ in heads_before]
    if opts.heads_ratio:
        ctx.report(0.05, f"ranking attention heads ({opts.importance})")
        if opts.importance == "ablation":
            scores = ablation_heads(model, train_ids[:sample], train_mask[:sample], opts.batch_size)
        else:
            scores = magnitude_heads(model)
        removed = heads_to_remove(scores, opts.heads_ratio, opts.global_pruning, opts.max_layer_ratio)
        for layer, drop in zip(layers_of(model), removed):
            if drop:
                keep_heads(layer, [h for h in range(int(layer.attention.self.num_attention_heads)) if h not in drop])
        details["heads_ratio"] = opts.heads_ratio
        details["head_scores"] = [[round(float(v), 6) for v in s] for s in scores]
    if opts.ffn_ratio:
        ctx.report(0.15, f"ranking feed-forward channels ({opts.importance})")
        if opts.importance == "ablation":
            ffn_scores = activation_ffn(model, train_ids[:sample], train_mask[:sample], opts.batch_size)
        else:
            ffn_scores = magnitude_ffn(model)
        for layer, keep in zip(layers_of(model), channels_to_keep(ffn_scores, opts.ffn_ratio, opts.round_to)):
            keep_ffn(layer, keep)
        details["ffn_ratio"] = opts.ffn_ratio
    prune_seconds = time.perf_counter() - started
    heads_after, ffn_after = head_counts(model), ffn_sizes(model)
    after_prune = _cosine(embed(model, held_ids, held_mask), reference)

    losses: list[float] = []
    finetune_seconds = 0.0
    if opts.finetune_epochs:
        started = time.perf_counter()
        lr = opts.lr if opts.lr is not None else 1e-4
        losses = finetune(model, original, train_ids, train_mask, opts, lr, seed, ctx)
        finetune_seconds = time.perf_counter() - started
        details["lr"] = lr
    cosine = _cosine(embed(model, held_ids, held_mask), reference)
    ctx.report(0.95, "checking the rebuild")
    rebuilt = check_rebuild(model, heads_after, ffn_after, sorted({2, max(2, max_length // 3), max_length}),
                            int(original.config.vocab_size), seed)
    if not rebuilt["status"].startswith("ok"):
        raise RuntimeError(f"the pruned encoder does not rebuild from its config and recorded widths: {rebuilt['status']}")
    params_after = sum(p.numel() for p in model.parameters())
    details.update({
        "heads_before": heads_before, "heads_after": heads_after,
        "pruned_heads": {str(i): drop for i, drop in enumerate(removed) if drop},
        "head_size": head_size(model), "ffn_before": ffn_before, "ffn_after": ffn_after,
        "params_before": params_before, "params_after": params_after,
        "params_kept": round(params_after / max(params_before, 1), 4),
        "cosine_inputs": f"{held_name}[:{len(held_ids)}] vs this pass's input model",
        "cosine_after_prune": after_prune, "cosine": cosine,
        "finetune_epochs": opts.finetune_epochs, "finetune_kd": bool(opts.finetune_epochs),
        "finetune_sentences": len(train_ids) if opts.finetune_epochs else 0, "finetune_loss_per_epoch": losses,
        "prune_seconds": round(prune_seconds, 3), "finetune_seconds": round(finetune_seconds, 3),
        "rebuild": rebuilt["status"], "rebuild_lengths": rebuilt.get("lengths"),
    })
    meta = {"hf_config": config_dict(model), "heads": heads_after, "ffn_sizes": ffn_after}
    return artifact.evolve(model=model, meta=meta, details=details)
