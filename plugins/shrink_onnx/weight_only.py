"""`quantize.weight_only`: block-wise 4- or 8-bit weights for an ONNX graph's linear layers and embedding tables.

ONNX Runtime runs them natively: `MatMulNBits` (com.microsoft, onnxruntime ≥1.17; 8-bit ≥1.22) for a MatMul
with a constant weight, `GatherBlockQuantized` (≥1.20) for an embedding table. Its `MatMulNBitsQuantizer` does
the quantizing: `rtn` (round to nearest), `hqq` (half-quadratic optimisation of each block's scale and zero
point, no data) and `gptq` (error-compensating, with calibration inputs from the recipe's data) for MatMul
weights; tables always by round to nearest (a lookup has no activations to compensate). Activations stay float
in the graph; `accuracy_level` 4 lets the kernel quantize them to int8 on the fly, block by block.
`table_scales: "float16"` stores the tables' block scales in half the bytes (`table_scales`).

`kernel: "int8"` keeps the 4-bit blocks in the file but runs them on ONNX Runtime's dynamic int8 MatMul
(`nbits_int8`): MatMulNBits is a kernel for one token at a time, and over a whole sequence on x86 it runs 2-3x
slower than int8 (bench/minilm.py).

Around the quantizer: Gemm layers become MatMul + Add and, for int4 tables, the model is converted to opset 21
(`matmul_form`); afterwards the model must load in ONNX Runtime, fit the target's opsets, and pass the parity
gate against the float model. Targets other than ONNX Runtime, or ones that admit a release older than the ops,
are refused at plan time. onnx, onnxruntime's quantizer (and onnx_ir, torch for `hqq`) are imported in `run()`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PassOptions, PlanContext
from shrink.api.data import rows, to_model
from shrink.support.ort_ops import version_problem
from shrink_common.onnx_graph import inline_copy, op_counts, opset_problems, prune_opset_imports, save_inline
from shrink_common.parity import ParityError, compare
from shrink_onnx.quantize import expand_nodes, refuse_requantizing, requantizing

if TYPE_CHECKING:
    import onnx

    from shrink.api.target import Target

MS = "com.microsoft"
TABLE_OPSET = 21  # int4/uint4 tensors (GatherBlockQuantized's table) exist from ai.onnx opset 21
DECODE_OPSET = 18  # kernel 'int8' unpacks the 4-bit weights with BitwiseAnd (ai.onnx 18)
OpType = Literal["MatMul", "Gemm", "Gather"]
QUANTIZED_OPS = (f"{MS}:MatMulNBits", "MatMulInteger", f"{MS}:GatherBlockQuantized")


class QuantizeWeightOnlyOptions(PassOptions):
    """Options of the `quantize.weight_only` pass."""

    search_space = {"block_size": {"choice": [32, 64, 128]}, "algorithm": {"choice": ["rtn", "hqq"]}}

    bits: Literal[4, 8] = Field(4, description="bits per weight (8: MatMul/Gemm weights only; tables are 4-bit)")
    block_size: Literal[16, 32, 64, 128, 256] = Field(
        32, description="weights per block along the reduction axis (a table: along its width), each block with its "
                        "own scale (and zero point): smaller blocks are more accurate and larger")
    table_block_size: Literal[16, 32, 64, 128, 256] | SkipJsonSchema[None] = Field(
        None, description="block size of the embedding tables (default: block_size); a lookup copies one row, so "
                          "tables tolerate larger blocks than the layers whose products sum many weights")
    table_scales: Literal["float32", "float16"] = Field(
        "float32", description="dtype of the embedding tables' block scales: 'float16' halves them (at block 32 a "
                               "float32 scale is a fifth of a 4-bit table's bytes); the looked-up rows are cast back "
                               "to float32; scales outside float16's normal range fail the pass")
    symmetric: bool | SkipJsonSchema[None] = Field(
        None, description="signed weights with a scale per block and no zero point (default); false: a zero point per "
                          "block too; 'hqq' is always asymmetric")
    algorithm: Literal["rtn", "hqq", "gptq"] = Field(
        "rtn", description="how MatMul weights are rounded: 'rtn' round to nearest, 'hqq' half-quadratic (no data), "
                           "'gptq' error-compensating with calibration inputs (the data's calibration or train split); "
                           "tables always 'rtn'")
    op_types: tuple[OpType, ...] = Field(
        ("MatMul", "Gemm", "Gather"), min_length=1,
        description="what to quantize: MatMul and Gemm weights (Gemm is rewritten as MatMul + Add), Gather tables "
                    "(embeddings; 4-bit, needs ai.onnx opset 21: the model is converted)")
    kernel: Literal["nbits", "int8"] = Field(
        "nbits", description="how the 4-bit MatMul weights run: 'nbits' ONNX Runtime's MatMulNBits (fast for one "
                             "token at a time); 'int8' the file keeps the 4-bit blocks, ONNX Runtime decodes them to "
                             "per-channel int8 weights when it loads the model (constant folding) and runs its dynamic "
                             "int8 MatMul, as quantize.ptq's dynamic schemes do: 2-3x faster than MatMulNBits over "
                             "whole sequences on x86, one byte per weight in memory")
    accuracy_level: int = Field(
        4, ge=0, le=4, description="MatMulNBits compute type: 0 unset, 1 float32, 2 float16, 3 bfloat16, 4 int8 (the "
                                   "activations quantized per block at run time); a CPU without the kernel computes "
                                   "more accurately; kernel 'int8' quantizes activations per tensor instead")
    exclude_nodes: tuple[str, ...] = Field((), description="node names or fnmatch patterns to leave in float (a Gemm "
                                                             "is matched by its own name); a pattern matching no node "
                                                             "fails the pass")
    calibration_samples: Annotated[int, Field(ge=1, le=10_000)] | SkipJsonSchema[None] = Field(
        None, description="'gptq': calibration inputs (default 128)")
    parity_samples: int = Field(256, ge=1, le=4096, description="eval inputs for the input-vs-output parity check")
    min_agreement: float = Field(0.95, ge=0, le=1, description="fail the pass when the top-1 class agrees with the "
                                                                 "input model on fewer than this fraction of inputs")
    min_cosine: float = Field(0.9, ge=-1, le=1, description="fail the pass when the cosine between the first output "
                                                             "and the input model's (over the parity inputs) is below this")

    @model_validator(mode="after")
    def _consistent(self) -> QuantizeWeightOnlyOptions:
        if self.algorithm != "rtn" and self.bits != 4:
            raise ValueError(f"algorithm {self.algorithm!r} quantizes to 4 bits only (ONNX Runtime's quantizer); use "
                             "'rtn' for 8 bits")
        if self.algorithm == "hqq" and self.symmetric:
            raise ValueError("algorithm 'hqq' fits a float zero point per block (asymmetric); leave out symmetric")
        if self.bits == 8 and "Gather" in self.op_types and "op_types" in self.model_fields_set:
            raise ValueError("op_types 'Gather': embedding tables are quantized to 4 bits only (GatherBlockQuantized in "
                             "ONNX Runtime's quantizer); remove 'Gather' or use bits 4")
        if self.table_block_size is not None and not self.tables:
            raise ValueError("table_block_size applies only to 4-bit embedding tables ('Gather' in op_types, bits 4)")
        if "table_scales" in self.model_fields_set and not self.tables:
            raise ValueError("table_scales applies only to 4-bit embedding tables ('Gather' in op_types, bits 4)")
        if self.kernel == "int8":
            if self.bits != 4:
                raise ValueError("kernel 'int8' runs 4-bit weights on int8 kernels; for 8-bit weights use quantize.ptq")
            if not {"MatMul", "Gemm"} & set(self.op_types):
                raise ValueError("kernel 'int8' applies to MatMul/Gemm weights; add 'MatMul' to op_types")
            if "accuracy_level" in self.model_fields_set:
                raise ValueError("accuracy_level applies to kernel 'nbits' (MatMulNBits); kernel 'int8' quantizes "
                                 "activations per tensor at run time")
        if self.calibration_samples is not None and self.algorithm != "gptq":
            raise ValueError("calibration_samples applies only to algorithm 'gptq'")
        return self

    @property
    def tables(self) -> bool:
        """Whether embedding tables are quantized (4 bits, 'Gather' in op_types)."""
        return self.bits == 4 and "Gather" in self.op_types

    @property
    def table_block(self) -> int:
        """The block size of the embedding tables."""
        return self.table_block_size or self.block_size

    @property
    def is_symmetric(self) -> bool:
        return self.algorithm != "hqq" and self.symmetric is not False

    def new_ops(self) -> list[tuple[str, list[str]]]:
        """The contrib ops the result will hold, with the dtype their MACs run in."""
        ops = []
        if {"MatMul", "Gemm"} & set(self.op_types) and self.kernel == "nbits":
            ops.append(("MatMulNBits", [f"int{self.bits}"]))
        if self.tables:
            ops.append(("GatherBlockQuantized", []))
        return ops


def target_problems(opts: QuantizeWeightOnlyOptions, target: Target, who: str) -> list[str]:
    """Why `target` cannot run what the pass writes: a runtime other than ONNX Runtime, opsets it does not accept,
    or a release older than the ops'."""
    runtime = target.get("runtime") or {}
    name = runtime.get("name")
    contrib = [op for op, _ in opts.new_ops()]
    if name and name != "onnxruntime":
        what = (f"ONNX Runtime contrib ops ({', '.join(contrib)}, domain {MS})" if contrib else
                "4-bit weights that only ONNX Runtime's constant folding turns into int8 kernels (kernel 'int8')")
        return [f"{who} writes {what}; target {target.name}'s runtime {name!r} cannot run them; use quantize.ptq"]
    problems = []
    opsets = target.get("opset") or {}
    if contrib and opsets and MS not in opsets:
        problems.append(f"{who} writes {MS} ops; target {target.name} accepts only the domains {', '.join(sorted(opsets))}")
    span = opsets.get("ai.onnx")
    if opts.tables and span and span["max"] < TABLE_OPSET:
        problems.append(f"int4 embedding tables need ai.onnx opset {TABLE_OPSET}; target {target.name} accepts up to "
                        f"{span['max']}; remove 'Gather' from op_types")
    elif opts.kernel == "int8" and span and span["max"] < DECODE_OPSET:
        problems.append(f"kernel 'int8' decodes the 4-bit weights with BitwiseAnd (ai.onnx opset {DECODE_OPSET}); "
                        f"target {target.name} accepts up to {span['max']}; use kernel 'nbits'")
    for op, dtypes in opts.new_ops():
        why = version_problem(runtime, target.name, MS, op, dtypes)
        if why:
            problems.append(f"{op}: {why}" + ("" if why.startswith("cannot") else
                                              " (raise the profile's runtime.version, or leave the op out)"))
    return problems


class QuantizeWeightOnly(Pass[QuantizeWeightOnlyOptions]):
    """Weight-only 4/8-bit block quantization (ONNX Runtime MatMulNBits, GatherBlockQuantized): RTN, HQQ or GPTQ."""

    name = "quantize.weight_only"
    consumes = ("onnx",)
    produces = "onnx"
    libraries = ("onnx-ir", "torch")

    def check(self, plan: PlanContext) -> list[str]:
        already = requantizing(plan.model_meta)
        if already:
            return [already + " (remove this pass, or start from the float model)"]
        problems = target_problems(self.options, plan.target, self.name)
        if self.options.algorithm == "gptq" and not plan.recipe.raw.get("data"):
            problems.append("algorithm 'gptq' needs calibration inputs but the recipe has no 'data' section; add one, "
                            "or use 'rtn' or 'hqq'")
        return problems

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        import onnx

        from shrink_onnx.matmul_form import ai_onnx_opset, gemm_to_matmul, to_opset
        from shrink_onnx.nbits_int8 import to_int8_kernels
        from shrink_onnx.table_scales import to_float16_scales

        refuse_requantizing(artifact, self.name)
        opts = self.options
        source = inline_copy(Path(artifact.model), ctx, "weight-only-input")
        original = onnx.load(str(source))
        model = _named(original)
        details: dict[str, Any] = {"bits": opts.bits, "block_size": opts.block_size, "symmetric": opts.is_symmetric,
                                   "algorithm": opts.algorithm, "kernel": opts.kernel, "op_types": list(opts.op_types)}
        if opts.kernel == "nbits":
            details["accuracy_level"] = opts.accuracy_level
        matmuls = {n.name for n in model.graph.node if n.op_type == "MatMul" and n.domain in ("", "ai.onnx")}
        gemms: set[str] = set()
        if "Gemm" in opts.op_types:
            before = {n.name for n in model.graph.node if n.op_type == "Gemm"}
            model, rewritten, kept = gemm_to_matmul(model)
            gemms = before - {n.name for n in model.graph.node if n.op_type == "Gemm"}
            details["gemm_rewritten"] = rewritten
            if kept:
                details["gemm_kept"] = kept
        excluded = expand_nodes(opts.exclude_nodes, [n.name for n in model.graph.node])
        if excluded:
            details["kept_float"] = ", ".join(excluded)
        wanted = ((matmuls if "MatMul" in opts.op_types else set()) | gemms) - set(excluded)
        weights = {t.name for t in model.graph.initializer}
        linear = {n.name for n in model.graph.node if n.name in wanted and len(n.input) > 1 and n.input[1] in weights}
        tables = {n.name for n in model.graph.node if opts.tables and n.op_type == "Gather" and n.domain in ("", "ai.onnx")
                  and n.input[0] in weights and n.name not in excluded}
        if not linear and not tables:
            raise RuntimeError(f"no {'/'.join(opts.op_types)} node with a constant weight to quantize "
                               f"(ops: {_summary(op_counts(original))})")
        int8_kernels = bool(linear) and opts.kernel == "int8"
        needed, reason, advice = ((TABLE_OPSET, "int4 tables need it", "remove 'Gather' from op_types") if tables else
                                  (DECODE_OPSET, "kernel 'int8' needs it", "use kernel 'nbits'") if int8_kernels else (0, "", ""))
        if ai_onnx_opset(model) < needed:
            ctx.report(0.05, f"converting to ai.onnx opset {needed} ({reason})")
            old = ai_onnx_opset(model)
            try:
                model = to_opset(model, needed)
            except Exception as exc:  # noqa: BLE001 - the converter raises many kinds; the message says which op
                raise RuntimeError(f"converting the model from ai.onnx opset {old} to {needed} ({reason}) failed: "
                                   f"{str(exc).splitlines()[0]}; {advice}") from None
            details["opset_converted"] = f"ai.onnx {old} → {needed} (onnx.version_converter)"
        if tables:
            details["table_block_size"] = opts.table_block
            details["table_scales"] = opts.table_scales
        ctx.report(0.15, f"{opts.algorithm} int{opts.bits}: {len(linear)} MatMul weight(s), {len(tables)} table(s)")
        if linear:
            model = self._linear(model, linear, artifact, ctx, details)
        if tables:
            model = _quantize(model, _rtn_config(opts, ("Gather",), opts.table_block), _others(model, tables, "Gather"), opts)
            if opts.table_scales == "float16":
                try:
                    model, details["float16_scale_tables"], details["table_scale_bytes_saved"] = to_float16_scales(model)
                except ValueError as exc:
                    raise RuntimeError(f"table_scales 'float16': {exc}; use table_scales 'float32'") from None
        if int8_kernels:
            ctx.report(0.6, "rewriting MatMulNBits for the int8 kernels (4-bit storage decoded at load)")
            try:
                model, details["int8_kernel_matmuls"], details["int8_weight_bytes_loaded"] = to_int8_kernels(model)
            except ValueError as exc:
                raise RuntimeError(f"kernel 'int8': {exc}; use kernel 'nbits'") from None
            # once loaded, ONNX Runtime holds these as int8 (about twice what the file stores for them); the analysis
            # counts what its constant folding leaves (`Analysis.folded_weight_bytes`), so the ram check sees it
        elif opts.accuracy_level:
            for node in model.graph.node:
                if node.op_type == "MatMulNBits":
                    _set_int(node, "accuracy_level", opts.accuracy_level)
        prune_opset_imports(model)
        out = ctx.new_path("weight-only", ".onnx")
        save_inline(model, out)
        result = onnx.load(str(out))
        _loads(out)
        problems = [p for p in opset_problems(result, ctx.target) if p not in opset_problems(original, ctx.target)]
        if problems:
            raise RuntimeError("the quantized model does not fit the target: " + "; ".join(problems))
        counts = op_counts(result)
        before_bytes, after_bytes = source.stat().st_size, out.stat().st_size
        details.update({
            "quantized_ops": _summary(Counter({op: n for op, n in counts.items() if op in QUANTIZED_OPS})),
            "float_matmuls_left": counts.get("MatMul", 0) + counts.get("Gemm", 0),
            "nodes_before": len(original.graph.node), "nodes_after": len(result.graph.node),
            "bytes_before": before_bytes, "bytes_after": after_bytes, "size_ratio": round(after_bytes / before_bytes, 4),
        })
        ctx.report(0.85, "checking parity against the float model")
        what = f"weight-only int{opts.bits}"
        details.update(compare(source, out, artifact, ctx, opts.parity_samples, opts.min_agreement, what))
        if not details["parity_cosine"] >= opts.min_cosine:
            raise ParityError(f"the {what} model's output has cosine {details['parity_cosine']:.4f} to the float model's "
                              f"on {details['parity_inputs']}, below min_cosine {opts.min_cosine}; use a smaller "
                              "block_size, 'hqq' or 'gptq', bits 8, or exclude_nodes")
        scheme = f"weight-only int{opts.bits} ({opts.algorithm}, block {opts.block_size}, " \
                 f"{'symmetric' if opts.is_symmetric else 'asymmetric'}" + \
                 ("; int8 kernels" if details.get("int8_kernel_matmuls") else "") + ")"
        ops = [op.split(":")[-1] for op in QUANTIZED_OPS if counts.get(op)]
        return artifact.evolve(model=str(out), meta={"quantization": {"scheme": scheme, "ops": ops}}, details=details)

    def _linear(self, model: onnx.ModelProto, names: set[str], artifact: Artifact, ctx: Context,
                details: dict[str, Any]) -> onnx.ModelProto:
        """The MatMuls in `names` as MatMulNBits, by the pass's algorithm."""
        from onnxruntime.quantization import matmul_nbits_quantizer as q

        opts = self.options
        skip = _others(model, names, "MatMul")
        if opts.algorithm == "rtn":
            return _quantize(model, _rtn_config(opts, ("MatMul",), opts.block_size), skip, opts)
        if opts.algorithm == "hqq":
            config = q.HQQWeightOnlyQuantConfig(block_size=opts.block_size, bits=opts.bits, op_types_to_quantize=("MatMul",))
            return _quantize(model, config, skip, opts)
        count = opts.calibration_samples or 128
        found = ctx.family(artifact).feeds(artifact, ctx, ("calibration", "train"), count)
        if found is None:
            what = ("the recipe has no data" if ctx.data is None
                    else f"no calibration/train split of {ctx.data.name!r} fits the model's inputs")
            raise RuntimeError(f"algorithm 'gptq' needs calibration inputs: {what}; use 'rtn' or 'hqq'")
        feeds, origin = found
        samples = [to_model(artifact.inputs, feeds, i, i + 1) for i in range(rows(feeds))]
        details["calibration_inputs"] = origin

        class Reader(q.CalibrationDataReader):
            def __init__(self) -> None:
                self._items = iter(samples)

            def get_next(self) -> dict[str, Any] | None:
                return next(self._items, None)

            def __deepcopy__(self, memo: dict[int, Any]) -> Reader:  # the quantizer copies the reader before reading
                return Reader()

        config = q.GPTQWeightOnlyQuantConfig(calibration_data_reader=Reader(), block_size=opts.block_size,
                                            op_types_to_quantize=("MatMul",))
        return _quantize(model, config, skip, opts)


def _rtn_config(opts: QuantizeWeightOnlyOptions, ops: tuple[str, ...], block_size: int) -> Any:
    from onnxruntime.quantization import matmul_nbits_quantizer as q

    # blocks of a table run along its last axis (each row's width)
    return q.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=opts.is_symmetric, bits=opts.bits,
                                          op_types_to_quantize=ops, quant_axes=(("MatMul", 0), ("Gather", -1)))


def _quantize(model: onnx.ModelProto, config: Any, skip: list[str], opts: QuantizeWeightOnlyOptions) -> onnx.ModelProto:
    """One run of ONNX Runtime's MatMulNBitsQuantizer (its INFO logging quieted)."""
    import logging

    import numpy as np
    from onnxruntime.quantization import matmul_nbits_quantizer as q

    for name in ("onnxruntime.quantization.matmul_nbits_quantizer", "neural_compressor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quantizer = q.MatMulNBitsQuantizer(model, bits=opts.bits, block_size=opts.block_size, is_symmetric=opts.is_symmetric,
                                       nodes_to_exclude=skip, algo_config=config)
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero block has scale 0; the quantizer writes 0 for it
        quantizer.process()
    return quantizer.model.model


def _named(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose main-graph nodes all have unique names (the quantizer excludes nodes by name)."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    taken = {n.name for n in model.graph.node if n.name}
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = f"{node.op_type}_{i}"
            name, k = base, 1
            while name in taken:
                name, k = f"{base}_{k}", k + 1
            node.name = name
            taken.add(name)
        seen.add(node.name)
    return model


def _others(model: onnx.ModelProto, chosen: set[str], op_type: str) -> list[str]:
    """Nodes of `op_type` not chosen: the quantizer's exclusions."""
    return [n.name for n in model.graph.node if n.op_type == op_type and n.name not in chosen]


def _set_int(node: onnx.NodeProto, name: str, value: int) -> None:
    import onnx

    for attr in node.attribute:
        if attr.name == name:
            node.attribute.remove(attr)
            break
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _loads(path: Path) -> None:
    """The quantized model must load in the installed ONNX Runtime (kernels exist for every node)."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise RuntimeError(f"the quantized model does not load in onnxruntime {ort.__version__}: "
                           f"{str(exc).splitlines()[0]}") from None


def _summary(counts: Counter[str]) -> str:
    return ", ".join(f"{op}×{n}" for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
