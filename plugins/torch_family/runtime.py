"""torch helpers shared by the torch passes: setup, safe loading, batched inference, measuring."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shrink import Artifact, Context, UsageError

THREADS_ENV = "SHRINK_TORCH_THREADS"


def setup_torch(seed: int) -> None:
    """One intra-op thread by default (small models run several times slower with more on few cores)."""
    torch.set_num_threads(int(os.environ.get(THREADS_ENV, "1")))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_state_dict(model: torch.nn.Module, path: Path) -> None:
    """Load weights with `weights_only=True`; anything needing arbitrary pickle is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"weights file {str(path)!r} does not exist") from None
    except Exception as exc:
        raise UsageError(
            f"weights file {str(path)!r} cannot be loaded safely (weights_only=True): {str(exc).splitlines()[0]}",
            hint="save a plain state_dict (torch.save(model.state_dict(), path)); shrink never unpickles arbitrary objects",
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise UsageError(f"weights {str(path)!r} do not match the model: {' '.join(line.strip() for line in first[:3])}") from None


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    outs = []
    for start in range(0, len(inputs), batch_size):
        outs.append(model(torch.tensor(np.asarray(inputs[start:start + batch_size]))).float().numpy())
    return np.concatenate(outs)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def measure(artifact: Artifact, ctx: Context) -> dict[str, Any]:
    model: torch.nn.Module = artifact.model
    metrics: dict[str, Any] = {"params": int(sum(p.numel() for p in model.parameters()))}
    if ctx.data is not None and ctx.data.task == "classification" and "eval" in ctx.data.splits:
        split = ctx.data.split("eval")
        metrics["accuracy"] = round(accuracy(predict(model, split.inputs), split.labels), 6)
    return metrics
