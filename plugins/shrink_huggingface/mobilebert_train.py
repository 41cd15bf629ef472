"""The torch side of `distill.mobilebert`: the bottleneck student, the transfer losses and the stages.

The student is transformers' `MobileBertModel` (so it saves, restores and exports like any Hugging Face
encoder): every block maps the teacher-wide hidden state through a linear bottleneck to a narrow
intra-block width, runs attention and the feed-forward network there, and maps back, so each block's
output has the teacher's width and can be compared with a teacher layer's output directly.

Training (MobileBERT's progressive knowledge transfer): an embedding stage when the word embeddings are
factorized, then stage k trains block k alone on feature-map MSE + attention KL against its mapped
teacher layer while the embeddings and blocks below stay frozen (only blocks 0..k run in the student,
layers 0..map[k] in the teacher), then a final stage trains everything on the prediction loss
(embedding cosine), optionally with the transfer terms over all blocks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shrink import Artifact, Context, UsageError
from shrink_common import distributed
from shrink_huggingface.model import Encoder, build, config_dict
from shrink_huggingface.tinybert_train import (
    ScoreCapture,
    _copy_matching,
    _schedule,
    layers_of,
    length_batches,
    masked_mse,
    student_artifact,
    token_epoch,
    truncated_svd,
    uniform_map,
)

if TYPE_CHECKING:
    from shrink_huggingface.mobilebert import DistillMobileBERTOptions

TERMS = ("embedding", "feature_map", "attention", "prediction")
_NEG = -1e4


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) of the attention distributions over real keys, averaged over heads and real
    query rows; from pre-softmax scores `[batch, heads, query, key]`. Head-averaged distributions when the
    head counts differ."""
    keys = (1.0 - mask[:, None, None, :].to(student.dtype)) * _NEG
    t_log = F.log_softmax(teacher + keys, dim=-1)
    s_log = F.log_softmax(student + keys, dim=-1)
    if student.shape[1] != teacher.shape[1]:
        t_log = torch.log(t_log.exp().mean(1, keepdim=True).clamp_min(1e-12))
        s_log = torch.log(s_log.exp().mean(1, keepdim=True).clamp_min(1e-12))
    kl = (t_log.exp() * (t_log - s_log)).sum(-1)  # [batch, heads, query]
    rows = mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * rows).sum() / distributed.mean_count(rows.sum()).clamp(min=1.0)


def student_config(opts: DistillMobileBERTOptions, teacher: Encoder) -> tuple[dict[str, Any], list[int]]:
    """The MobileBERT config of the student and its layer map; user errors as UsageError."""
    t = config_dict(teacher)
    shape = opts.student
    t_layers, hidden = int(t["num_hidden_layers"]), int(t["hidden_size"])
    layers = shape.layers or t_layers
    heads = shape.heads or int(t["num_attention_heads"])
    if shape.intra_size % heads:
        raise UsageError(f"intra_size {shape.intra_size} is not a multiple of {heads} heads (the teacher's count; set student.heads)")
    embedding = shape.embedding_size or hidden
    if embedding > hidden:
        raise UsageError(f"embedding_size {embedding} is wider than the teacher's hidden size {hidden}")
    mapping = uniform_map(layers, t_layers) if opts.layer_map == "uniform" else list(opts.layer_map)
    if len(mapping) != layers:
        raise UsageError(f"layer_map has {len(mapping)} entries for a {layers}-block student")
    bad = [j for j in mapping if j >= t_layers]
    if bad:
        raise UsageError(f"layer_map names teacher layers {bad}; the teacher has {t_layers} layers (0–{t_layers - 1})")
    config = {
        "model_type": "mobilebert", "vocab_size": int(t["vocab_size"]), "hidden_size": hidden, "embedding_size": embedding,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": shape.ffn_size or 4 * shape.intra_size,
        "intra_bottleneck_size": shape.intra_size, "true_hidden_size": shape.intra_size, "use_bottleneck": True,
        "use_bottleneck_attention": False, "key_query_shared_bottleneck": True, "num_feedforward_networks": shape.ffn_stack,
        "normalization_type": shape.norm, "trigram_input": False, "classifier_activation": False,
        "max_position_embeddings": int(t.get("max_position_embeddings", 512)), "type_vocab_size": int(t.get("type_vocab_size", 2)),
        "hidden_act": t.get("hidden_act", "gelu"), "pad_token_id": int(t.get("pad_token_id") or 0),
        "initializer_range": float(t.get("initializer_range", 0.02)),
        "hidden_dropout_prob": float(opts.dropout), "attention_probs_dropout_prob": float(opts.dropout),
    }
    return config, mapping


@torch.no_grad()
def init_embeddings(student: Encoder, teacher: Encoder) -> str:
    """Copy the teacher's embeddings; a narrower word table is the teacher's rank-e SVD factorization
    (table ≈ U_e·S_e, then `embedding_transformation` = V_e), which keeps the token ids (and tokenizer)."""
    mine, theirs = student.bert.embeddings, teacher.bert.embeddings
    copied, total = _copy_matching(mine, theirs)
    table = theirs.word_embeddings.weight.float()
    width = mine.word_embeddings.weight.shape[1]
    if width == table.shape[1]:
        return f"embeddings copied ({copied}/{total} tensors)"
    rows, project, kept = truncated_svd(table, width)
    mine.word_embeddings.weight.copy_(rows)
    mine.embedding_transformation.weight.copy_(project)
    mine.embedding_transformation.bias.zero_()
    return f"embeddings copied ({copied}/{total} tensors); word table factorized by rank-{width} SVD ({kept:.1%} of its energy)"


def build_student(opts: DistillMobileBERTOptions, teacher: Encoder) -> tuple[Encoder, list[int], dict[str, Any]]:
    """(student, layer map, description): a MobileBERT whose blocks keep the teacher's hidden width."""
    if teacher.task != "sentence-embedding":
        raise UsageError(f"distill.mobilebert distils sentence encoders (task 'sentence-embedding'), not {teacher.task!r}")
    config, mapping = student_config(opts, teacher)
    student = build(config, teacher.task, teacher.normalize, teacher.output_size)
    described: dict[str, Any] = {
        "architecture": "mobilebert", "layers": config["num_hidden_layers"], "inter_block_size": config["hidden_size"],
        "intra_size": config["intra_bottleneck_size"], "heads": config["num_attention_heads"],
        "ffn_size": config["intermediate_size"], "ffn_stack": config["num_feedforward_networks"],
        "embedding_size": config["embedding_size"], "norm": config["normalization_type"],
        "init": init_embeddings(student, teacher) + "; blocks random",
    }
    return student.eval(), mapping, described


@contextmanager
def first_layers(model: Encoder, count: int) -> Iterator[None]:
    """Run only the first `count` transformer layers of `model` inside the block."""
    encoder = model.bert.encoder
    full = encoder.layer
    encoder.layer = nn.ModuleList(list(full)[:count])
    try:
        yield
    finally:
        encoder.layer = full


class StateCapture:
    """The embedding output and every layer's output from forward hooks (transformers' own
    `output_hidden_states` recorder binds to the layers present at its first call, which
    `first_layers` changes)."""

    def __init__(self, model: Encoder) -> None:
        self.outputs: dict[int, torch.Tensor] = {}
        modules = [model.bert.embeddings, *layers_of(model)]
        self.handles = [module.register_forward_hook(self._keeper(i)) for i, module in enumerate(modules)]

    def _keeper(self, index: int) -> Any:
        def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.outputs[index] = output[0] if isinstance(output, tuple) else output
        return keep

    def run(self, model: Encoder, ids: torch.Tensor, mask: torch.Tensor, layers: int) -> tuple[Any, tuple[torch.Tensor, ...]]:
        """(model output, (embeddings, layer 0 output, …)) running only the first `layers` layers."""
        self.outputs.clear()
        with first_layers(model, layers):
            out = model.hidden(ids, mask)
        return out, tuple(self.outputs[i] for i in range(layers + 1))

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.outputs.clear()


class Transfer(nn.Module):
    """The MobileBERT loss terms for one batch; `blocks` are the student blocks compared (all in the final stage)."""

    def __init__(self, student: Encoder, teacher: Encoder, mapping: list[int]) -> None:
        super().__init__()
        self.mapping = list(mapping)
        self.student_scores = ScoreCapture(student)
        self.teacher_scores = ScoreCapture(teacher)
        self.student_states = StateCapture(student)
        self.teacher_states = StateCapture(teacher)

    def close(self) -> None:
        for capture in (self.student_scores, self.teacher_scores, self.student_states, self.teacher_states):
            capture.close()

    def forward(self, student: Encoder, teacher: Encoder, ids: torch.Tensor, mask: torch.Tensor, weights: dict[str, float],
                blocks: list[int], embeddings_only: bool = False) -> dict[str, torch.Tensor]:
        top = max(blocks) + 1 if blocks else 0
        t_top = self.mapping[top - 1] + 1 if top else 0
        final = weights.get("prediction", 0.0) > 0
        t_pred: torch.Tensor | None = None
        s_pred: torch.Tensor | None = None
        t_scores: dict[int, torch.Tensor] = {}
        if embeddings_only:
            with torch.no_grad():
                t_states: tuple[torch.Tensor, ...] = (teacher.bert.embeddings(input_ids=ids),)
            s_states: tuple[torch.Tensor, ...] = (student.bert.embeddings(input_ids=ids),)
        else:
            with torch.no_grad():
                t_out, t_states = self.teacher_states.run(teacher, ids, mask, len(layers_of(teacher)) if final else t_top)
                t_pred = teacher.head(t_out, mask) if final else None
                if weights.get("attention"):
                    t_scores = {self.mapping[i]: self.teacher_scores.scores(self.mapping[i]) for i in blocks}
            s_out, s_states = self.student_states.run(student, ids, mask, len(layers_of(student)) if final else top)
            s_pred = student.head(s_out, mask) if final else None
        tokens = mask.unsqueeze(-1)
        zero = s_states[-1].sum() * 0.0
        terms = dict.fromkeys(TERMS, zero)
        if weights.get("embedding"):
            terms["embedding"] = masked_mse(s_states[0], t_states[0], tokens)
        if weights.get("feature_map") and blocks:
            terms["feature_map"] = sum((masked_mse(s_states[i + 1], t_states[self.mapping[i] + 1], tokens)
                                        for i in blocks), zero) / len(blocks)
        if weights.get("attention") and blocks:
            terms["attention"] = sum((attention_kl(self.student_scores.scores(i), t_scores[self.mapping[i]], mask)
                                      for i in blocks), zero) / len(blocks)
        if s_pred is not None and t_pred is not None:
            distance = 1.0 - F.cosine_similarity(s_pred, t_pred, dim=-1)
            if distributed.active():  # this rank's part of the mean over the global batch
                terms["prediction"] = distance.sum() / distributed.mean_count(torch.tensor(float(len(distance))))
            else:
                terms["prediction"] = distance.mean()
        terms["total"] = sum((weights.get(name, 0.0) * terms[name] for name in TERMS), zero)
        return terms


class StageStep(nn.Module):
    """One stage's student and loss terms as a module, the unit DDP wraps under torchrun once the stage has
    frozen what it does not train; the teacher is held outside the module tree, never wrapped."""

    def __init__(self, student: Encoder, teacher: Encoder, transfer: Transfer, stage: dict[str, Any]) -> None:
        super().__init__()
        self.student = student
        self.transfer = transfer
        self.teacher = (teacher,)  # a tuple: not a submodule
        self.stage = stage

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        stage = self.stage
        return self.transfer(self.student, self.teacher[0], ids, mask, stage["weights"], stage["blocks"], stage["embeddings_only"])


def freeze_except(student: Encoder, trainable: list[nn.Module] | None) -> list[nn.Parameter]:
    """Freeze every student parameter but those of `trainable` (None: everything trains); the trainable ones."""
    for p in student.parameters():
        p.requires_grad_(trainable is None)
    if trainable is None:
        return list(student.parameters())
    params = [p for module in trainable for p in module.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def stages(student: Encoder, opts: DistillMobileBERTOptions, factorized: bool) -> list[dict[str, Any]]:
    """The training plan: [embedding stage], one stage per block, the final stage."""
    plan: list[dict[str, Any]] = []
    if opts.stage_epochs and factorized:
        plan.append({"stage": "embeddings", "modules": [student.bert.embeddings], "blocks": [], "embeddings_only": True,
                     "weights": {"embedding": 1.0}, "epochs": opts.stage_epochs, "lr": opts.lr, "sentences": opts.stage_sentences})
    if opts.stage_epochs:
        for k, layer in enumerate(layers_of(student)):
            plan.append({"stage": f"block {k}", "modules": [layer], "blocks": [k], "embeddings_only": False,
                         "weights": opts.weights.model_dump(), "epochs": opts.stage_epochs, "lr": opts.lr,
                         "sentences": opts.stage_sentences})
    if opts.epochs:
        plan.append({"stage": "final", "modules": None, "blocks": list(range(len(layers_of(student)))), "embeddings_only": False,
                     "weights": opts.final_weights.model_dump(), "epochs": opts.epochs, "lr": opts.final_lr, "sentences": None})
    return plan


def train_stage(stage: dict[str, Any], student: Encoder, teacher: Encoder, transfer: Transfer, tokens: tuple[np.ndarray, np.ndarray],
                opts: DistillMobileBERTOptions, generator: torch.Generator, report: Callable[[int, int, float], None]) -> dict[str, Any]:
    """Train one stage; its per-epoch losses."""
    ids_all, mask_all = tokens
    count = min(len(ids_all), stage["sentences"] or len(ids_all))
    params = freeze_except(student, stage["modules"])
    # under torchrun: wrapped after the stage froze the rest (DDP syncs the gradients of what trains)
    step_terms = distributed.wrap(StageStep(student, teacher, transfer, stage), unused=True)
    optimizer = torch.optim.AdamW(params, lr=stage["lr"], weight_decay=opts.weight_decay)
    total = stage["epochs"] * math.ceil(count / opts.batch_size)
    warmup = int(opts.warmup * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _schedule(step, total, warmup))
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(stage["epochs"]):
        student.eval()  # frozen parts stay deterministic; the trained modules get the configured dropout
        for module in stage["modules"] or [student]:
            module.train()
        order = torch.randperm(count, generator=generator).numpy()
        means, steps = token_epoch(
            ids_all, mask_all, length_batches(order, mask_all, opts.batch_size, generator),
            lambda ids, mask: step_terms(ids, mask), optimizer, scheduler, TERMS, parallel=True)
        step += steps
        if not math.isfinite(means["total"]):
            raise FloatingPointError(f"the {stage['stage']} stage's loss became {means['total']} in epoch {epoch + 1}; lower lr")
        history.append(means)
        report(epoch + 1, stage["epochs"], means["total"])
    used = [name for name in TERMS if stage["weights"].get(name)]
    return {"stage": stage["stage"], "epochs": stage["epochs"], "sentences": count, "steps": step, "lr": stage["lr"],
            "trainable_params": sum(p.numel() for p in params),
            "loss_per_epoch": [{name: round(h[name], 6) for name in (*used, "total")} for h in history],
            "seconds": round(time.perf_counter() - started, 3)}


def distill(opts: DistillMobileBERTOptions, artifact: Artifact, ctx: Context, who: str) -> Artifact:
    from shrink_common.torch_setup import setup_torch
    from shrink_huggingface.tokens import train_tokens

    seed = ctx.seed + opts.seed
    setup_torch(seed)
    distributed.init(opts.batch_size, f"{who}: batch_size")
    teacher: Encoder = artifact.model.eval()
    ids_all, mask_all, max_length = train_tokens(opts, artifact, ctx, who)
    tokens = (ids_all, mask_all)

    ctx.report(0.02, "building the bottleneck student")
    torch.manual_seed(seed)
    student, mapping, described = build_student(opts, teacher)
    factorized = described["embedding_size"] < described["inter_block_size"]
    plan = stages(student, opts, factorized)
    teacher_grad = [p.requires_grad for p in teacher.parameters()]
    for p in teacher.parameters():
        p.requires_grad_(False)
    transfer = Transfer(student, teacher, mapping)
    generator = torch.Generator().manual_seed(seed)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for index, stage in enumerate(plan):
            def report(epoch: int, epochs: int, loss: float, index: int = index, name: str = stage["stage"]) -> None:
                ctx.report(0.05 + 0.9 * (index + epoch / epochs) / len(plan),
                           f"distilling, stage {index + 1}/{len(plan)} ({name}): epoch {epoch}/{epochs}, loss {loss:.4f}")

            results.append(train_stage(stage, student, teacher, transfer, tokens, opts, generator, report))
        distributed.barrier()  # every rank is done before rank 0 stores the result
    finally:
        transfer.close()
        for p, flag in zip(teacher.parameters(), teacher_grad):
            p.requires_grad_(flag)
        for p in student.parameters():
            p.requires_grad_(True)
    student.eval()
    details: dict[str, Any] = {
        "student": described, "layer_map": mapping, "teacher_layers": int(teacher.config.num_hidden_layers),
        "teacher_params": sum(p.numel() for p in teacher.parameters()), "student_params": sum(p.numel() for p in student.parameters()),
        "weights": opts.weights.model_dump(), "final_weights": opts.final_weights.model_dump(),
        "sentences": len(ids_all), "max_length": max_length, "stages": results,
        "final_losses": results[-1]["loss_per_epoch"][-1] if results and results[-1]["loss_per_epoch"] else {},
        "train_seconds": round(time.perf_counter() - started, 3),
        "attention_transfer": "KL(teacher ‖ student) of attention distributions from pre-softmax scores (hooks on query/key); "
                              "padding masked",
    }
    return student_artifact(artifact, student, details)
