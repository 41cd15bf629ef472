"""What a layer-wise distillation student learns from, computed once: the teacher is fixed, so its outputs for
a sentence are the same in every epoch.

For every training sentence `TeacherTargets.build` stores the teacher's embedding-layer output and the mapped
layers' hidden states (`[tokens, layers, hidden]`), the mapped layers' pre-softmax attention scores
(`[layers, heads, tokens, tokens]`) — real tokens only, in float16, in two files read back with positioned
reads (so they live in the page cache, not in the process) — and its prediction (float32, in memory). It runs
the teacher over sentences sorted by length, so batches carry almost no padding. `batch()` assembles one
training batch, zero-padded to the batch's length (padded positions are masked out of every loss term). The
scores are `[layers, heads, L, L]` per sentence: stored for all mapped layers, they dominate the size (49k
sentences of the built-in corpus: ~4.4 GB at max_length 128), hence disk and not RAM.

`live()` computes the same targets for one batch by running the teacher (the path without a cache).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

FLOAT16_MAX = 65504.0
DISK_MARGIN = 1 << 30  # leave this much free besides the targets


@dataclass(frozen=True)
class Targets:
    """The teacher's outputs for one batch: its prediction `[B, D]`, the hidden states the student's are
    compared with (`hidden[0]` the embedding output, then one per mapped layer, each `[B, L, H]`) and the
    pre-softmax scores of the mapped layers (`scores[j]`: teacher layer j, `[B, heads, L, L]`)."""

    prediction: torch.Tensor
    hidden: list[torch.Tensor]
    scores: dict[int, torch.Tensor]


def live(teacher: Any, capture: Any, ids: torch.Tensor, mask: torch.Tensor, layers: list[int],
         score_layers: list[int]) -> Targets:
    """Targets for one batch from a teacher forward pass (`capture`: the teacher's `ScoreCapture`)."""
    with torch.no_grad():
        prediction, out = teacher.predict(ids, mask, output_hidden_states=True)
        scores = {j: capture.scores(j) for j in score_layers}
    return Targets(prediction, [out.hidden_states[0], *(out.hidden_states[j + 1] for j in layers)], scores)


def prefix_masks(mask_all: np.ndarray) -> bool:
    """Every row's real tokens come first (right padding): what the per-sentence layout assumes."""
    return bool(np.all(mask_all[:, :-1] >= mask_all[:, 1:])) if mask_all.shape[1] > 1 else True


class TeacherTargets:
    """Per-sentence teacher targets on disk (see the module docstring); `batch(idx, length)` reads a batch."""

    def __init__(self, directory: Path, lengths: np.ndarray, layers: int, hidden: int, heads: int, score_layers: list[int],
                 prediction: np.ndarray, hidden_offsets: np.ndarray, score_offsets: np.ndarray, seconds: float) -> None:
        self.directory = directory
        self.lengths = lengths
        self.layers = layers  # hidden states per token (embedding output + mapped layers)
        self.hidden_size = hidden
        self.heads = heads
        self.score_layers = score_layers
        self.prediction = prediction
        self.hidden_offsets = hidden_offsets
        self.score_offsets = score_offsets
        self.seconds = seconds
        self.owner = True  # close() deletes the files; a reader opened from the writer's state() does not
        self._hidden = open(directory / "hidden.f16", "rb")  # noqa: SIM115 - closed by close()
        self._scores = open(directory / "scores.f16", "rb") if score_layers else None  # noqa: SIM115

    def state(self) -> dict[str, Any]:
        """What another process needs to read these targets (`opened`): the folder and the offsets."""
        return {"directory": self.directory, "lengths": self.lengths, "layers": self.layers, "hidden": self.hidden_size,
                "heads": self.heads, "score_layers": self.score_layers, "prediction": self.prediction,
                "hidden_offsets": self.hidden_offsets, "score_offsets": self.score_offsets, "seconds": self.seconds}

    @classmethod
    def opened(cls, state: dict[str, Any]) -> TeacherTargets:
        """A reader of targets another process (torchrun's rank 0) stored; its close() leaves the files."""
        reader = cls(**state)
        reader.owner = False
        return reader

    @property
    def nbytes(self) -> int:
        files = [self.directory / "hidden.f16"] + ([self.directory / "scores.f16"] if self.score_layers else [])
        return sum(f.stat().st_size for f in files) + self.prediction.nbytes

    @staticmethod
    def size_estimate(lengths: np.ndarray, layers: int, hidden: int, heads: int, score_layers: int) -> int:
        """Bytes the float16 files will take."""
        lengths = lengths.astype(np.int64)
        return int(2 * (lengths.sum() * layers * hidden + (lengths ** 2).sum() * heads * score_layers))

    @classmethod
    def build(cls, teacher: Any, capture: Any, ids_all: np.ndarray, mask_all: np.ndarray, layers: list[int],
              score_layers: list[int], directory: Path, token_budget: int = 4096,
              report: Callable[[float], None] | None = None) -> TeacherTargets | str:
        """Run the teacher over every sentence and store its targets in `directory` (created). Returns the
        targets, or why they were not stored (then nothing is left on disk): not enough free disk, or a value
        float16 cannot hold."""
        started = time.perf_counter()
        lengths = mask_all.sum(1).astype(np.int64)
        config = teacher.config
        hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
        per_token = 1 + len(layers)
        need = cls.size_estimate(lengths, per_token, hidden, heads, len(score_layers))
        directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(directory).free
        if need + DISK_MARGIN > free:
            shutil.rmtree(directory, ignore_errors=True)
            return f"the teacher's targets need {need / 1e9:.1f} GB and {directory} has {free / 1e9:.1f} GB free"
        order = np.argsort(lengths, kind="stable")
        hidden_offsets = np.zeros(len(lengths), dtype=np.int64)
        score_offsets = np.zeros(len(lengths), dtype=np.int64)
        prediction: np.ndarray | None = None
        written_h = written_s = 0
        done = 0
        with open(directory / "hidden.f16", "wb") as fh, open(directory / "scores.f16", "wb") as fs, torch.no_grad():
            start = 0
            while start < len(order):
                end = start + 1  # sorted by length: the batch's last sentence is its longest
                while end < len(order) and (end + 1 - start) * max(int(lengths[order[end]]), 1) <= token_budget:
                    end += 1
                chunk = order[start:end]
                longest = max(int(lengths[chunk].max()), 1)
                ids = torch.from_numpy(np.ascontiguousarray(ids_all[chunk, :longest]))
                mask = torch.from_numpy(np.ascontiguousarray(mask_all[chunk, :longest]))
                targets = live(teacher, capture, ids, mask, layers, score_layers)
                if prediction is None:
                    prediction = np.zeros((len(lengths), targets.prediction.shape[-1]), dtype=np.float32)
                prediction[chunk] = targets.prediction.float().numpy()
                states = torch.stack(targets.hidden, dim=2)  # [B, L, layers, H]
                scores = torch.stack([targets.scores[j] for j in score_layers], dim=1) if score_layers else None
                too_large = float(states.abs().max())
                if scores is not None:
                    too_large = max(too_large, float(scores.abs().max()))
                if not too_large < FLOAT16_MAX:
                    fh.close()
                    fs.close()
                    shutil.rmtree(directory, ignore_errors=True)
                    return f"a teacher output reaches {too_large:.3g}, beyond float16"
                states_np = states.to(torch.float16).numpy()
                scores_np = scores.to(torch.float16).numpy() if scores is not None else None
                for row, i in enumerate(chunk):
                    n = int(lengths[i])
                    hidden_offsets[i] = written_h
                    data = np.ascontiguousarray(states_np[row, :n])
                    fh.write(data.tobytes())
                    written_h += data.size
                    if scores_np is not None:
                        score_offsets[i] = written_s
                        block = np.ascontiguousarray(scores_np[row, :, :, :n, :n])
                        fs.write(block.tobytes())
                        written_s += block.size
                start += len(chunk)
                done += len(chunk)
                if report is not None:
                    report(done / len(order))
        if not score_layers:
            (directory / "scores.f16").unlink()
        assert prediction is not None
        return cls(directory, lengths, per_token, hidden, heads, list(score_layers), prediction, hidden_offsets,
                   score_offsets, time.perf_counter() - started)

    def batch(self, idx: np.ndarray, length: int) -> Targets:
        """The targets of sentences `idx`, zero-padded to `length` tokens, in float32."""
        b = len(idx)
        states = np.zeros((b, length, self.layers, self.hidden_size), dtype=np.float16)
        s_layers = len(self.score_layers)
        scores = np.zeros((b, s_layers, self.heads, length, length), dtype=np.float16) if s_layers else None
        fh = self._hidden.fileno()
        for row, i in enumerate(idx):
            n = min(int(self.lengths[i]), length)
            count = n * self.layers * self.hidden_size
            raw = os.pread(fh, 2 * count, 2 * int(self.hidden_offsets[i]))
            states[row, :n] = np.frombuffer(raw, dtype=np.float16).reshape(n, self.layers, self.hidden_size)
            if scores is not None and self._scores is not None:
                full = int(self.lengths[i])
                raw = os.pread(self._scores.fileno(), 2 * s_layers * self.heads * full * full, 2 * int(self.score_offsets[i]))
                block = np.frombuffer(raw, dtype=np.float16).reshape(s_layers, self.heads, full, full)
                scores[row, :, :, :n, :n] = block[:, :, :n, :n]
        hidden = torch.from_numpy(states).float()
        by_layer = [hidden[:, :, k] for k in range(self.layers)]
        score_map = {}
        if scores is not None:
            tensor = torch.from_numpy(scores).float()
            score_map = {j: tensor[:, k] for k, j in enumerate(self.score_layers)}
        return Targets(torch.from_numpy(self.prediction[idx]), by_layer, score_map)

    def close(self) -> None:
        """Close the files, and delete them when this process wrote them."""
        self._hidden.close()
        if self._scores is not None:
            self._scores.close()
        if self.owner:
            shutil.rmtree(self.directory, ignore_errors=True)
