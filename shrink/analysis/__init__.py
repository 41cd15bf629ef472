"""Static analysis of any ONNX model: weights, MACs, peak activation memory, arena plan and op inventory.

Torch-free: imports onnx, numpy and the standard library; onnxruntime is imported only when shape
inference leaves a tensor's shape unknown (fused `com.microsoft` ops, data-dependent shapes), to run the
model once on zero inputs and read the shapes off.

Conventions (see `../shared/reference/targets.md`, "Counting"):

* MACs are multiply-accumulates (FLOPs = 2 x MACs) of Conv, ConvTranspose, Gemm, MatMul, Einsum,
  RNN/GRU/LSTM, Attention and their quantized and `com.microsoft` fused forms; other ops count 0.
* Weights are the stored tensors (initializers, including those of subgraphs, and `Constant` nodes),
  counted by their stored dtype. Tensors computed from weights alone (a DequantizeLinear of an int8
  initializer, a Transpose of a weight) are not activations and add no parameters.
* Peak activation memory is the liveness lower bound over the main graph in topological order; view ops
  alias their input. `arena_bytes` is a greedy-by-size offset plan of the same tensors (TFLite Micro
  style, no alignment). Activations inside If/Loop/Scan bodies are not included (see `notes`).

Modules (each imports only those listed before it, plus `shrink.errors`):

* `dtypes`    – element-type names and storage sizes
* `model`     – `AnalysisError`, `load_model` and its structure checks, graph-walking helpers
* `shapes`    – `parse_shape`, input pinning, type and shape inference (onnxruntime fallback)
* `result`    – the `Analysis`, `LiveTensor` and `OpUse` records
* `macs`      – MAC rules per op type and If/Loop/Scan counting
* `memory`    – topological order, tensor lifetimes, peak and arena plan
* `inventory` – weights by dtype and the op inventory
* `analyzer`  – `analyze()`, tying them together
"""

from __future__ import annotations

from shrink.analysis.analyzer import analyze
from shrink.analysis.dtypes import dtype_name
from shrink.analysis.model import AnalysisError, check_structure, load_model
from shrink.analysis.result import Analysis, LiveTensor, OpUse
from shrink.analysis.shapes import parse_shape

__all__ = ["Analysis", "AnalysisError", "LiveTensor", "OpUse", "analyze", "check_structure", "dtype_name", "load_model",
           "parse_shape"]
