"""The torch side of `distill.tinybert`: student construction, layer mapping, the four loss terms and the loop.

Attention scores: transformers' eager attention returns post-softmax probabilities (and sdpa returns
none), so the pre-softmax scores QKᵀ/√d are rebuilt from forward hooks on each layer's `query` and
`key` projections (`ScoreCapture`). Padded positions are excluded from the MSE (rows and columns),
which is what TinyBERT's "zero the masked scores in both models" amounts to. The same hooks work for
the teacher and the student and whatever attention implementation the model uses.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrink import Artifact, Context, UsageError
from shrink_common.training import run_epoch
from shrink_huggingface.model import Encoder, FactorizedEmbedding, build, config_dict, head_counts, word_table

if TYPE_CHECKING:
    from shrink_huggingface.tinybert import DistillTinyBERTOptions

TERMS = ("embedding", "hidden", "attention", "prediction")


def uniform_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer i learns from teacher layer ⌊(i+1)·T/S⌋ − 1 (6 → 2 layers: [2, 5])."""
    return [max(0, (i + 1) * teacher_layers // student_layers - 1) for i in range(student_layers)]


def layers_of(model: Encoder) -> nn.ModuleList:
    return model.bert.encoder.layer


class ScoreCapture:
    """Pre-softmax attention scores of every layer, rebuilt from forward hooks on the query/key projections."""

    def __init__(self, model: Encoder) -> None:
        self.layers = layers_of(model)
        self.outputs: dict[tuple[int, str], torch.Tensor] = {}
        self.handles = []
        for i, layer in enumerate(self.layers):
            attention = layer.attention.self
            for part in ("query", "key"):
                self.handles.append(getattr(attention, part).register_forward_hook(self._keeper(i, part)))

    def _keeper(self, index: int, part: str) -> Any:
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            self.outputs[(index, part)] = output
        return keep

    def scores(self, index: int) -> torch.Tensor:
        """`[batch, heads, query, key]` scores QKᵀ/√d of layer `index` from the last forward pass."""
        attention = self.layers[index].attention.self
        heads, size = int(attention.num_attention_heads), int(attention.attention_head_size)
        q, k = self.outputs[(index, "query")], self.outputs[(index, "key")]
        batch, length, _ = q.shape
        q = q.view(batch, length, heads, size).transpose(1, 2)
        k = k.view(batch, length, heads, size).transpose(1, 2)
        return q @ k.transpose(-1, -2) * size ** -0.5

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.outputs.clear()


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the positions where `mask` (broadcast to `a`) is 1."""
    mask = mask.to(a.dtype).expand_as(a)
    return ((a - b) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Score MSE over real (query, key) token pairs; head-averaged when the head counts differ."""
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    pairs = (mask[:, None, :, None] * mask[:, None, None, :]).to(student.dtype)
    return masked_mse(student, teacher, pairs)


def prediction_loss(student: torch.Tensor, teacher: torch.Tensor, task: str, temperature: float) -> torch.Tensor:
    if task == "classification":
        t = temperature
        return F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                        reduction="batchmean", log_target=True) * (t * t)
    return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()


class Losses(nn.Module):
    """The four TinyBERT terms for one batch; holds the learned projections used when widths differ."""

    def __init__(self, student: Encoder, teacher: Encoder, mapping: list[int], weights: dict[str, float],
                 temperature: float) -> None:
        super().__init__()
        ds, dt = int(student.config.hidden_size), int(teacher.config.hidden_size)
        self.project_embedding = nn.Linear(ds, dt) if ds != dt else nn.Identity()
        self.project_hidden = nn.Linear(ds, dt) if ds != dt else nn.Identity()
        self.mapping = list(mapping)
        self.weights = dict(weights)
        self.temperature = temperature
        self.task = student.task
        self.student_scores = ScoreCapture(student)
        self.teacher_scores = ScoreCapture(teacher)

    def close(self) -> None:
        self.student_scores.close()
        self.teacher_scores.close()

    def forward(self, student: Encoder, teacher: Encoder, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            t_pred, t_out = teacher.predict(ids, mask, output_hidden_states=True)
            t_scores = {j: self.teacher_scores.scores(j) for j in set(self.mapping)} if self.weights["attention"] else {}
        s_pred, s_out = student.predict(ids, mask, output_hidden_states=True)
        tokens = mask.unsqueeze(-1)
        zero = s_pred.sum() * 0.0
        terms: dict[str, torch.Tensor] = {name: zero for name in TERMS}
        if self.weights["embedding"]:
            terms["embedding"] = masked_mse(self.project_embedding(s_out.hidden_states[0]), t_out.hidden_states[0], tokens)
        if self.weights["hidden"]:
            terms["hidden"] = sum((masked_mse(self.project_hidden(s_out.hidden_states[i + 1]), t_out.hidden_states[j + 1], tokens)
                                   for i, j in enumerate(self.mapping)), zero) / len(self.mapping)
        if self.weights["attention"]:
            terms["attention"] = sum((attention_mse(self.student_scores.scores(i), t_scores[j], mask)
                                      for i, j in enumerate(self.mapping)), zero) / len(self.mapping)
        if self.weights["prediction"]:
            terms["prediction"] = prediction_loss(s_pred, t_pred, self.task, self.temperature)
        terms["total"] = sum((self.weights[name] * terms[name] for name in TERMS), zero)
        return terms


def _copy_matching(dest: nn.Module, src: nn.Module) -> tuple[int, int]:
    """Copy every tensor of `src` whose name and shape match one of `dest`; (copied, total) counts."""
    mine = dest.state_dict()
    theirs = src.state_dict()
    same = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    dest.load_state_dict({**mine, **same})
    return len(same), len(mine)


def build_student(opts: DistillTinyBERTOptions, teacher: Encoder) -> tuple[Encoder, list[int], list[int], dict[str, Any]]:
    """(student, layer mapping, teacher layers the student was initialised from, description)."""
    t_layers = int(teacher.config.num_hidden_layers)
    config = config_dict(teacher)
    if opts.keep_layers is not None:
        bad = [k for k in opts.keep_layers if k >= t_layers]
        if bad:
            raise UsageError(f"keep_layers {bad} do not exist: the teacher has {t_layers} layers (0–{t_layers - 1})")
        layers, sources = len(opts.keep_layers), list(opts.keep_layers)
        default_map = list(opts.keep_layers)
    else:
        shape = opts.student
        layers = shape.layers
        config["hidden_size"] = shape.hidden_size or config["hidden_size"]
        config["num_attention_heads"] = shape.heads or config["num_attention_heads"]
        config["intermediate_size"] = shape.ffn_size or config["intermediate_size"]
        if shape.embedding_size is not None:
            if shape.embedding_size >= config["hidden_size"]:
                raise UsageError(f"student embedding_size {shape.embedding_size} must be below its hidden_size "
                                 f"{config['hidden_size']} to factorize the word table")
            config["embedding_size"] = shape.embedding_size
        if config["hidden_size"] % config["num_attention_heads"]:
            raise UsageError(f"student hidden_size {config['hidden_size']} is not a multiple of its "
                             f"{config['num_attention_heads']} heads")
        default_map = uniform_map(layers, t_layers)
    if isinstance(opts.layer_map, list):
        mapping = list(opts.layer_map)
    elif opts.layer_map == "uniform":
        mapping = uniform_map(layers, t_layers)
    else:
        mapping = default_map
    bad = [j for j in mapping if j >= t_layers]
    if bad:
        raise UsageError(f"layer_map names teacher layers {bad}; the teacher has {t_layers} layers (0–{t_layers - 1})")
    if opts.keep_layers is None:
        sources = mapping
    config["num_hidden_layers"] = layers
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = float(opts.dropout)
    student = build(config, teacher.task, teacher.normalize, teacher.output_size)
    described: dict[str, Any] = {"layers": layers, "hidden_size": config["hidden_size"], "heads": config["num_attention_heads"],
                                 "ffn_size": config["intermediate_size"]}
    if config.get("embedding_size"):
        described["embedding_size"] = config["embedding_size"]
    if opts.init == "teacher":
        copied, total = _copy_matching(student.bert.embeddings, teacher.bert.embeddings)
        factorized = student.model.get_input_embeddings()
        if isinstance(factorized, FactorizedEmbedding):
            described["word_table"] = factorize_from(factorized, word_table(teacher).weight)
        for i, j in enumerate(sources):
            c, t = _copy_matching(layers_of(student)[i], layers_of(teacher)[j])
            copied, total = copied + c, total + t
        for mine, theirs in ((getattr(student.bert, "pooler", None), getattr(teacher.bert, "pooler", None)),
                             (getattr(student.model, "classifier", None), getattr(teacher.model, "classifier", None))):
            if isinstance(mine, nn.Module) and isinstance(theirs, nn.Module):
                c, t = _copy_matching(mine, theirs)
                copied, total = copied + c, total + t
        described["init"] = f"teacher layers {sources}: {copied}/{total} tensors copied"
    else:
        described["init"] = "random"
    return student.eval(), mapping, sources, described


@torch.no_grad()
def truncated_svd(table: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`table ≈ rows @ project.T` at rank `width`: rows = U_e·S_e `[tokens, width]`, project = V_e
    `[hidden, width]` (an `nn.Linear(width, hidden)` weight), and the share of the energy kept."""
    u, s, vh = torch.linalg.svd(table.float(), full_matrices=False)
    return u[:, :width] * s[:width], vh[:width].T, float((s[:width] ** 2).sum() / (s ** 2).sum())


@torch.no_grad()
def factorize_from(embedding: FactorizedEmbedding, table: torch.Tensor) -> str:
    """Initialise a factorized word embedding from a full table by truncated SVD."""
    width = embedding.table.weight.shape[1]
    if embedding.project.weight.shape[0] != table.shape[1]:
        return f"factorized to width {width}, randomly initialised (the teacher's table is {table.shape[1]} wide)"
    rows, project, kept = truncated_svd(table, width)
    embedding.table.weight.copy_(rows)
    embedding.project.weight.copy_(project)
    return f"rank-{width} SVD of the teacher's table ({kept:.1%} of its energy)"


def _schedule(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def length_batches(order: np.ndarray, mask_all: np.ndarray, batch_size: int, generator: torch.Generator,
                   group: int = 64) -> list[np.ndarray]:
    """Batches of sentences of similar length, in random order: `order` is cut into groups of `group`
    batches, each group sorted by length and cut into batches, and the batches shuffled. Each batch is
    trimmed to its longest sentence, so this skips most of the padding random batches carry (61% of the
    tokens on the built-in corpus) while every epoch still sees new batch compositions."""
    lengths = mask_all.sum(1)
    span = batch_size * group
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start:start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def token_epoch(ids_all: np.ndarray, mask_all: np.ndarray, batches: list[np.ndarray],
                loss_terms: Any, optimizer: Any, scheduler: Any, names: tuple[str, ...]) -> tuple[dict[str, float], int]:
    """One epoch (`shrink_common.training.run_epoch`) over `batches` of sentence indices, each batch trimmed to
    its longest sentence (batches of one are skipped): `loss_terms(ids, mask)` returns the weighted terms and
    their `total`. Returns the mean of each term over the sentences seen, and the optimizer steps taken."""
    def terms(idx: np.ndarray) -> dict[str, torch.Tensor]:
        mask_np = mask_all[idx]
        length = max(int(mask_np.sum(1).max()), 1)
        return loss_terms(torch.from_numpy(np.ascontiguousarray(ids_all[idx, :length])),
                          torch.from_numpy(np.ascontiguousarray(mask_np[:, :length])))

    return run_epoch((idx for idx in batches if len(idx) >= 2), terms, optimizer, scheduler, names=names)


def distill(opts: DistillTinyBERTOptions, artifact: Artifact, ctx: Context, who: str) -> Artifact:
    from shrink_common.torch_setup import setup_torch
    from shrink_huggingface.tokens import train_tokens

    seed = ctx.seed + opts.seed
    setup_torch(seed)
    teacher: Encoder = artifact.model.eval()
    ids_all, mask_all, max_length = train_tokens(opts, artifact, ctx, who)

    ctx.report(0.02, "building the student")
    torch.manual_seed(seed)
    student, mapping, sources, described = build_student(opts, teacher)
    weights = opts.weights.model_dump()
    losses = Losses(student, teacher, mapping, weights, opts.temperature)
    params = list(student.parameters()) + list(losses.parameters())
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    steps_per_epoch = math.ceil(len(ids_all) / opts.batch_size)
    total = opts.epochs * steps_per_epoch
    warmup = int(opts.warmup * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _schedule(step, total, warmup))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    step = 0
    try:
        for epoch in range(opts.epochs):
            student.train()
            order = torch.randperm(len(ids_all), generator=generator).numpy()
            batches = length_batches(order, mask_all, opts.batch_size, generator)
            means, steps = token_epoch(ids_all, mask_all, batches, lambda ids, mask: losses(student, teacher, ids, mask),
                                     optimizer, scheduler, TERMS)
            step += steps
            if not math.isfinite(means["total"]):
                raise FloatingPointError(f"the distillation loss became {means['total']} in epoch {epoch + 1}; lower lr")
            history.append(means)
            ctx.report(0.05 + 0.9 * (epoch + 1) / opts.epochs,
                       f"distilling: epoch {epoch + 1}/{opts.epochs}, loss {means['total']:.4f}")
    finally:
        losses.close()
    student.eval()
    seconds = time.perf_counter() - started
    final = history[-1] if history else {}
    details: dict[str, Any] = {
        "student": described, "layer_map": mapping, "initialised_from": sources if opts.init == "teacher" else None,
        "teacher_layers": int(teacher.config.num_hidden_layers),
        "teacher_params": sum(p.numel() for p in teacher.parameters()), "student_params": sum(p.numel() for p in student.parameters()),
        "weights": weights, "sentences": len(ids_all), "max_length": max_length, "epochs": opts.epochs, "steps": step,
        "train_seconds": round(seconds, 3),
        "final_losses": {name: round(value, 6) for name, value in final.items()},
        "loss_per_epoch": [round(h["total"], 6) for h in history],
        "attention_scores": "pre-softmax QKᵀ/√d from hooks on query/key projections; padding masked",
    }
    meta = {"hf_config": config_dict(student), "heads": head_counts(student)}
    return artifact.evolve(model=student, meta=meta, details=details)

