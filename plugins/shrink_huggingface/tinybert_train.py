"""The torch side of `distill.tinybert`: student construction, layer mapping, the four loss terms and the loop.

Attention scores: transformers' eager attention returns post-softmax probabilities (and sdpa returns
none), so the pre-softmax scores QKᵀ/√d are rebuilt from forward hooks on each layer's `query` and
`key` projections (`ScoreCapture`). Padded positions are excluded from the MSE (rows and columns),
which is what TinyBERT's "zero the masked scores in both models" amounts to. The same hooks work for
the teacher and the student and whatever attention implementation the model uses.

Speed: the teacher is fixed, so with more than one epoch its targets are computed once and read back
(`teacher_targets`); the student trains, and the teacher runs, in bfloat16 autocast where the CPU multiplies
bf16 natively (`precision`), with a fused AdamW. The step's time split is in the details (`time_split`).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrink import Artifact, Context, UsageError
from shrink.support.units import human_bytes
from shrink_common import distributed
from shrink_common.training import run_epoch
from shrink_huggingface.model import Encoder, FactorizedEmbedding, build, config_dict, head_counts, word_table
from shrink_huggingface.precision import autocast, resolve_precision
from shrink_huggingface.teacher_targets import Targets, TeacherTargets, live, prefix_masks

if TYPE_CHECKING:
    from shrink_huggingface.tinybert import DistillTinyBERTOptions, TrainingOptions

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
    """Mean squared error over the positions where `mask` (broadcast to `a`) is 1, in float32 (under
    torchrun, this rank's part of the mean over the global batch)."""
    a, b = a.float(), b.float()
    mask = mask.to(a.dtype).expand_as(a)
    return ((a - b) ** 2 * mask).sum() / distributed.mean_count(mask.sum()).clamp(min=1.0)


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Score MSE over real (query, key) token pairs; head-averaged when the head counts differ."""
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    pairs = mask[:, None, :, None] * mask[:, None, None, :]
    return masked_mse(student, teacher, pairs)


def prediction_loss(student: torch.Tensor, teacher: torch.Tensor, task: str, temperature: float) -> torch.Tensor:
    student, teacher = student.float(), teacher.float()
    if distributed.active():  # this rank's part of the mean over the global batch
        count = distributed.mean_count(torch.tensor(float(len(student))))
        if task == "classification":
            t = temperature
            return F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                            reduction="sum", log_target=True) / count * (t * t)
        return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).sum() / count
    if task == "classification":
        t = temperature
        return F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                        reduction="batchmean", log_target=True) * (t * t)
    return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()


class Losses(nn.Module):
    """The four TinyBERT terms for one batch; holds the learned projections used when widths differ. The
    teacher's side comes as `Targets` (`targets()` runs the teacher; a `TeacherTargets` store reads them)."""

    def __init__(self, student: Encoder, teacher: Encoder, mapping: list[int], weights: dict[str, float],
                 temperature: float) -> None:
        super().__init__()
        ds, dt = int(student.config.hidden_size), int(teacher.config.hidden_size)
        self.project_embedding = nn.Linear(ds, dt) if ds != dt else nn.Identity()
        self.project_hidden = nn.Linear(ds, dt) if ds != dt else nn.Identity()
        self.mapping = list(mapping)
        self.layers = sorted(set(mapping))  # teacher layers whose hidden states are targets
        self.score_layers = self.layers if weights["attention"] else []
        self.weights = dict(weights)
        self.temperature = temperature
        self.task = student.task
        self.student_scores = ScoreCapture(student)
        self.teacher_scores = ScoreCapture(teacher)

    def close(self) -> None:
        self.student_scores.close()
        self.teacher_scores.close()

    def targets(self, teacher: Encoder, ids: torch.Tensor, mask: torch.Tensor) -> Targets:
        """The teacher's targets for one batch, by running it."""
        return live(teacher, self.teacher_scores, ids, mask, self.layers, self.score_layers)

    def forward(self, student: Encoder, targets: Targets, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        s_pred, s_out = student.predict(ids, mask, output_hidden_states=True)
        tokens = mask.unsqueeze(-1)
        zero = s_pred.float().sum() * 0.0
        terms: dict[str, torch.Tensor] = {name: zero for name in TERMS}
        hidden = {j: targets.hidden[k + 1] for k, j in enumerate(self.layers)}
        if self.weights["embedding"]:
            terms["embedding"] = masked_mse(self.project_embedding(s_out.hidden_states[0]), targets.hidden[0], tokens)
        if self.weights["hidden"]:
            terms["hidden"] = sum((masked_mse(self.project_hidden(s_out.hidden_states[i + 1]), hidden[j], tokens)
                                   for i, j in enumerate(self.mapping)), zero) / len(self.mapping)
        if self.weights["attention"]:
            terms["attention"] = sum((attention_mse(self.student_scores.scores(i), targets.scores[j], mask)
                                      for i, j in enumerate(self.mapping)), zero) / len(self.mapping)
        if self.weights["prediction"]:
            terms["prediction"] = prediction_loss(s_pred, targets.prediction, self.task, self.temperature)
        terms["total"] = sum((self.weights[name] * terms[name] for name in TERMS), zero)
        return terms


class Objective(nn.Module):
    """The student and the loss projections as one module, the unit DDP wraps under torchrun (the teacher
    stays outside, unwrapped): `forward(targets, ids, mask)` is `losses(student, targets, ids, mask)`."""

    def __init__(self, student: Encoder, losses: Losses) -> None:
        super().__init__()
        self.student = student
        self.losses = losses

    def forward(self, targets: Targets, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.losses(self.student, targets, ids, mask)


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
                loss_terms: Any, optimizer: Any, scheduler: Any, names: tuple[str, ...],
                parallel: bool = False) -> tuple[dict[str, float], int]:
    """One epoch (`shrink_common.training.run_epoch`) over `batches` of sentence indices, each batch trimmed to
    its longest sentence (batches of one are skipped): `loss_terms(ids, mask)` returns the weighted terms and
    their `total` (`loss_terms(ids, mask, idx)` when it takes a third argument: the batch's sentence indices).
    `parallel`: under torchrun, each rank takes its share of every batch (trimmed to the whole batch's longest
    sentence, as in one process). Returns the mean of each term over the sentences seen, and the optimizer
    steps taken."""
    import inspect

    with_index = len(inspect.signature(loss_terms).parameters) >= 3
    parallel = parallel and distributed.active()

    def terms(batch: np.ndarray | tuple[np.ndarray, np.ndarray]) -> dict[str, torch.Tensor]:
        whole, idx = batch if isinstance(batch, tuple) else (batch, batch)  # the global batch, this rank's sentences
        length = max(int(mask_all[whole].sum(1).max()), 1)
        mask_np = mask_all[idx]
        ids = torch.from_numpy(np.ascontiguousarray(ids_all[idx, :length]))
        mask = torch.from_numpy(np.ascontiguousarray(mask_np[:, :length]))
        return loss_terms(ids, mask, idx) if with_index else loss_terms(ids, mask)

    if parallel:  # every rank needs a sentence of every batch
        shares = ((idx, distributed.shard(idx)) for idx in batches if len(idx) >= max(2, distributed.world()))
        return run_epoch(shares, terms, optimizer, scheduler, size=lambda pair: len(pair[1]), names=names)
    return run_epoch((idx for idx in batches if len(idx) >= 2), terms, optimizer, scheduler, names=names)


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> tuple[torch.optim.Optimizer, str]:
    """AdamW, fused into one kernel per step where torch has it on the CPU (the same update, several times
    faster over a large word table than the per-tensor one), and its description."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True), "AdamW (fused)"
    except (RuntimeError, TypeError):  # pragma: no cover - a torch without the fused CPU kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), "AdamW"


class RowAdam(torch.optim.SparseAdam):
    """SparseAdam that also takes a dense gradient, as its nonzero rows: under torchrun DDP all-reduces the word
    table's gradient dense, and the table still gets the update one process gives it."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is not None and not grad.is_sparse:
                    rows = grad.abs().sum(1).nonzero().flatten()
                    param.grad = torch.sparse_coo_tensor(rows[None], grad[rows], grad.shape)
        return super().step(closure)


def row_table(student: Encoder) -> nn.Embedding | None:
    """The student's word table when it can train by rows: no other module shares it. Alone, it gets sparse
    gradients (the rows of the batch's tokens); under torchrun DDP all-reduces a dense one (`RowAdam`)."""
    table = word_table(student)
    if not table.weight.requires_grad or sum(p is table.weight for _, p in student.named_parameters(remove_duplicate=False)) != 1:
        return None
    table.sparse = not distributed.active()
    return table


def optimizers(student: Encoder, losses: Losses, lr: float, weight_decay: float) -> tuple[list[torch.optim.Optimizer], str]:
    """The optimizers of a distillation and their description: AdamW for every trainable weight but the word table
    (`row_table`), which lazy Adam updates by rows. A step then touches only the rows of the batch's tokens (their
    Adam moments move when the token is seen, and no weight decay pulls the rows of tokens the text never shows),
    where a dense gradient and AdamW would rewrite the whole table, most of the student's weights, in every step."""
    table = row_table(student)
    params = [p for p in list(student.parameters()) + list(losses.parameters())
              if p.requires_grad and (table is None or p is not table.weight)]
    dense, name = adamw(params, lr, weight_decay)
    if table is None:
        return [dense], name
    return [dense, RowAdam([table.weight], lr=lr)], f"{name}; lazy Adam (SparseAdam) for the word table's rows"


class TimedOptimizer:
    """Optimizers stepped together, adding up the time their steps take (for the pass's time split)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers
        self.seconds = 0.0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        started = time.perf_counter()
        for optimizer in self.optimizers:
            optimizer.step()
        self.seconds += time.perf_counter() - started


class Schedulers:
    """One learning-rate schedule applied to several optimizers."""

    def __init__(self, optimizers: list[torch.optim.Optimizer], factor: Any) -> None:
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(optimizer, factor) for optimizer in optimizers]

    def step(self) -> None:
        for scheduler in self.schedulers:
            scheduler.step()


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def teacher_store(opts: TrainingOptions, losses: Losses, teacher: Encoder, ids_all: np.ndarray, mask_all: np.ndarray,
                  ctx: Context, precision: str) -> tuple[TeacherTargets | None, str]:
    """The teacher's targets for every sentence, computed once (`teacher_cache` 'auto' with more than one epoch)
    in `precision`, or None and why not."""
    if opts.teacher_cache == "off":
        return None, "off (set in the recipe): the teacher runs in every step"
    if opts.epochs < 2:
        return None, "off: one epoch reads each sentence's targets once, so the teacher runs in every step"
    if not prefix_masks(mask_all):
        return None, "off: the tokenizer pads on the left"
    if not distributed.single_node():
        return None, "off: the ranks run on several machines (the targets are shared through rank 0's disk)"
    ctx.report(0.03, f"running the teacher once over {len(ids_all):,} sentences")
    found: TeacherTargets | str | None = None
    if distributed.is_writer():  # under torchrun rank 0 writes the targets, and every rank reads them
        with autocast(precision):
            found = TeacherTargets.build(teacher, losses.teacher_scores, ids_all, mask_all, losses.layers,
                                         losses.score_layers, ctx.new_path("teacher-targets", ""),
                                         report=lambda f: ctx.report(0.03 + 0.02 * f, "running the teacher once"))
    if distributed.active():
        shared = distributed.from_writer(found.state() if isinstance(found, TeacherTargets) else found)
        if not distributed.is_writer():
            found = shared if isinstance(shared, str) else TeacherTargets.opened(shared)
    assert found is not None
    if isinstance(found, str):
        return None, f"off: {found}; the teacher runs in every step"
    return found, (f"on: the teacher ran once over {len(ids_all):,} sentences in {found.seconds:.1f} s; its targets "
                   f"({human_bytes(found.nbytes)}, float16 on disk) were read back in every epoch")


@dataclass
class Training:
    """What `train` did: each epoch's mean loss terms, the steps, the seconds and where they went."""

    history: list[dict[str, float]]
    steps: int
    seconds: float
    split: dict[str, float]  # teacher, targets_read, student_forward_and_loss, backward, optimizer_step
    teacher_cache: str
    precision: str
    optimizer: str

    def described(self, tokenize_seconds: float) -> dict[str, Any]:
        """The pass details of the training, with the tokenization before it in the time split."""
        final = self.history[-1] if self.history else {}
        return {"epochs": len(self.history), "steps": self.steps, "train_seconds": round(self.seconds, 3),
                "time_split_seconds": {"tokenize": round(tokenize_seconds, 2), **self.split},
                "teacher_cache": self.teacher_cache, "precision": self.precision, "optimizer": self.optimizer,
                "peak_rss_bytes": peak_rss_bytes(),
                "final_losses": {name: round(value, 6) for name, value in final.items()},
                "loss_per_epoch": [round(h["total"], 6) for h in self.history]}


def train(opts: TrainingOptions, student: Encoder, teacher: Encoder, mapping: list[int], ids_all: np.ndarray,
          mask_all: np.ndarray, ctx: Context, seed: int) -> Training:
    """The TinyBERT loop: `opts.epochs` over the tokenized sentences, the student learning the teacher's embedding
    output, mapped hidden states, attention scores and prediction (weighted by `opts.weights`). Trainable are the
    student's parameters that require a gradient, and the loss projections."""
    weights = opts.weights.model_dump()
    losses = Losses(student, teacher, mapping, weights, opts.temperature)
    # under torchrun DDP wraps the complete student and the projections, never the teacher
    objective = distributed.wrap(Objective(student, losses), unused=True)
    steppers, optimizer_name = optimizers(student, losses, opts.lr, opts.weight_decay)
    timed = TimedOptimizer(steppers)
    precision, precision_reason = resolve_precision(opts.precision)
    steps_per_epoch = math.ceil(len(ids_all) / opts.batch_size)
    total = opts.epochs * steps_per_epoch
    warmup = int(opts.warmup * total)
    scheduler = Schedulers(steppers, lambda step: _schedule(step, total, warmup))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    split = dict.fromkeys(("teacher", "targets_read", "student_forward_and_loss"), 0.0)
    store: TeacherTargets | None = None
    try:
        store, cache_note = teacher_store(opts, losses, teacher, ids_all, mask_all, ctx, precision)
        if store is not None:
            split["teacher"] = store.seconds

        def loss_terms(ids: torch.Tensor, mask: torch.Tensor, idx: np.ndarray) -> dict[str, torch.Tensor]:
            started = time.perf_counter()
            with autocast(precision):
                targets = store.batch(idx, ids.shape[1]) if store is not None else losses.targets(teacher, ids, mask)
                middle = time.perf_counter()
                terms = objective(targets, ids, mask)
            split["targets_read" if store is not None else "teacher"] += middle - started
            split["student_forward_and_loss"] += time.perf_counter() - middle
            return terms

        started = time.perf_counter()
        step = 0
        for epoch in range(opts.epochs):
            objective.train()
            order = torch.randperm(len(ids_all), generator=generator).numpy()
            batches = length_batches(order, mask_all, opts.batch_size, generator)
            means, steps = token_epoch(ids_all, mask_all, batches, loss_terms, timed, scheduler, TERMS, parallel=True)
            step += steps
            if not math.isfinite(means["total"]):
                raise FloatingPointError(f"the distillation loss became {means['total']} in epoch {epoch + 1}; lower lr")
            history.append(means)
            ctx.report(0.05 + 0.9 * (epoch + 1) / opts.epochs,
                       f"distilling: epoch {epoch + 1}/{opts.epochs}, loss {means['total']:.4f}")
        seconds = time.perf_counter() - started + (store.seconds if store is not None else 0.0)
        distributed.barrier()  # every rank is done reading rank 0's targets, and training
    finally:
        losses.close()
        if store is not None:
            store.close()
        word_table(student).sparse = False
    student.eval()
    split["backward"] = seconds - sum(split.values()) - timed.seconds
    split["optimizer_step"] = timed.seconds
    return Training(history, step, seconds, {k: round(v, 1) for k, v in split.items()}, cache_note,
                    f"{precision} ({precision_reason})", optimizer_name)


def distill(opts: DistillTinyBERTOptions, artifact: Artifact, ctx: Context, who: str) -> Artifact:
    from shrink_common.torch_setup import setup_torch
    from shrink_huggingface.tokens import train_tokens

    seed = ctx.seed + opts.seed
    setup_torch(seed)
    distributed.init(opts.batch_size, f"{who}: batch_size")
    began = time.perf_counter()
    teacher: Encoder = artifact.model.eval()
    ids_all, mask_all, max_length = train_tokens(opts, artifact, ctx, who)
    tokenize_seconds = time.perf_counter() - began

    ctx.report(0.02, "building the student")
    torch.manual_seed(seed)
    student, mapping, sources, described = build_student(opts, teacher)
    training = train(opts, student, teacher, mapping, ids_all, mask_all, ctx, seed)
    details: dict[str, Any] = {
        "student": described, "layer_map": mapping, "initialised_from": sources if opts.init == "teacher" else None,
        "teacher_layers": int(teacher.config.num_hidden_layers),
        "teacher_params": sum(p.numel() for p in teacher.parameters()), "student_params": sum(p.numel() for p in student.parameters()),
        "weights": opts.weights.model_dump(), "sentences": len(ids_all), "max_length": max_length,
        **training.described(tokenize_seconds),
        "attention_scores": "pre-softmax QKᵀ/√d from hooks on query/key projections; padding masked",
    }
    return student_artifact(artifact, student, details)


def student_artifact(artifact: Artifact, student: Encoder, details: dict[str, Any]) -> Artifact:
    """`artifact` evolved to a trained student: its config and head counts in the meta, the ranks under torchrun."""
    if distributed.active():
        details["ranks"] = distributed.world()
    meta = {"hf_config": config_dict(student), "heads": head_counts(student)}
    return artifact.evolve(model=student, meta=meta, details=details)
