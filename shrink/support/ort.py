"""ONNX Runtime sessions (CPU, one intra-op thread by default), batched inference and host latency.

The one place a session is configured; onnxruntime is imported only when a session is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def session(model: str | Path | bytes, threads: int = 1, config: dict[str, str] | None = None,
            optimize: bool = True, level: str | None = None, save_optimized: Path | None = None) -> Any:
    """A CPU InferenceSession of a model file (or serialized bytes) with `threads` intra-op threads;
    `config` adds session config entries, `optimize=False` runs the graph exactly as written, `level`
    names a `GraphOptimizationLevel` (`"ORT_ENABLE_BASIC"`, ...) and `save_optimized` writes the
    optimized graph to that file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    elif level is not None:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if save_optimized is not None:
        options.optimized_model_filepath = str(save_optimized)
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"])


def run_session(model: str | Path | Any, feeds: dict[str, np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
    """Run `feeds` through a model file (or an open session) in batches (the model's own batch size
    when its batch dimension is fixed)."""
    sess = session(model) if isinstance(model, (str, Path)) else model
    first = sess.get_inputs()[0]
    fixed = isinstance(first.shape[0], int) if first.shape else True
    step = int(first.shape[0]) if fixed and first.shape else batch_size
    n = len(next(iter(feeds.values())))
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, step):
        chunks.append(sess.run(None, {k: v[start:start + step] for k, v in feeds.items()}))
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def host_latency_ms(path: str | Path, feeds: dict[str, np.ndarray], max_runs: int = 300, max_seconds: float = 1.0) -> float:
    """Median batch-1 latency on this host (1 intra-op thread) — reported beside estimates, never gated."""
    import time

    sess = session(path)
    for _ in range(10):
        sess.run(None, feeds)
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < max_runs and (len(times) < 20 or time.perf_counter() < deadline):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)
