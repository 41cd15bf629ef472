"""Static analysis of any ONNX model: weights, MACs, peak activation memory, arena plan and op inventory.

Torch-free: imports onnx, numpy and the standard library; onnxruntime is imported only when shape
inference leaves a tensor's shape unknown (fused `com.microsoft` ops, data-dependent shapes), to run a
graph once on zero inputs and read the shapes off.

Conventions (see `../shared/reference/targets.md`, "Counting"):

* MACs are multiply-accumulates (FLOPs = 2 x MACs) of Conv, ConvTranspose, Gemm, MatMul, Einsum,
  RNN/GRU/LSTM, Attention and their quantized and `com.microsoft` fused forms, each counted as the float
  op it replaces; elementwise, normalization, pooling and data-movement ops count 0. An If counts its
  costlier branch, a Loop/Scan its body once per iteration.
* Nothing that cannot be counted counts 0 silently: unknown shapes, ops without a cost model, incomplete
  If branches and trip counts that are not constant each add a reason to `Analysis.incomplete`.
* Weights are the stored tensors (initializers, including those of subgraphs, and `Constant` nodes),
  counted by their stored dtype. Tensors computed from weights alone (a DequantizeLinear of an int8
  initializer, a Transpose of a weight) are not activations and add no parameters.
* Peak activation memory is the liveness lower bound over the main graph in topological order; view ops
  alias their input; an If/Loop/Scan step adds the working set of its costliest body. `arena_bytes` is a
  greedy-by-size offset plan of the same tensors (TFLite Micro style, no alignment).

Modules (each imports only those listed before it, plus `shrink.errors` and `shrink.support`):

* `dtypes`        – element-type names and storage sizes
* `model`         – `AnalysisError`, `load_model` and its structure checks, graph-walking helpers
* `shapes`        – `parse_shape`, input pinning, types read off a graph, ONNX shape inference
* `static_values` – small tensors computable from weights and pinned shapes (torch's F.pad, trip counts)
* `measure`       – shapes read off one onnxruntime run on zero inputs
* `bodies`        – If/Loop/Scan bodies from outside: formal input types, standalone models, output types
* `scopes`        – a type for every tensor of the main graph and of every If/Loop/Scan body
* `result`        – the `Analysis`, `LiveTensor`, `OpUse` and `SubgraphMacs` records
* `op_costs`      – MAC rules per (domain, op), the ops that cost nothing, the dtype MACs run in
* `macs`          – MACs over the scopes: If branches, Loop/Scan iterations, incomplete reasons
* `memory`        – topological order, tensor lifetimes, peak and arena plan
* `inventory`     – weights by dtype and the op inventory with per-row MACs
* `analyzer`      – `analyze()`, tying them together
"""

from __future__ import annotations

from shrink.analysis.analyzer import analyze
from shrink.analysis.dtypes import dtype_name
from shrink.analysis.model import AnalysisError, check_structure, load_model
from shrink.analysis.result import Analysis, LiveTensor, OpUse, SubgraphMacs
from shrink.analysis.shapes import parse_shape

__all__ = ["Analysis", "AnalysisError", "LiveTensor", "OpUse", "SubgraphMacs", "analyze", "check_structure",
           "dtype_name", "load_model", "parse_shape"]
