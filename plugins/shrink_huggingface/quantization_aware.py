"""`distill.quantization_aware`: TinyBERT distillation continued through the 4-bit rounding that a later
`quantize.weight_only` pass applies, so the student learns weights that survive it.

Weight-only int4 rounds every linear weight and embedding row in blocks (round to nearest, one scale per block).
Trained in float, a student loses to that rounding what it never saw; here it keeps distilling from the source
model (the teacher) with its linear weights seen through the same rounding (straight-through gradients) and its
tables rounded and frozen, then hands on weights that are exactly on the grid: `quantize.weight_only` (algorithm
'rtn', symmetric) then stores them without further loss. The options must agree with that later pass, which the
plan checks.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PlanContext
from shrink_huggingface.tinybert import TrainingOptions

BlockSize = Literal[16, 32, 64, 128, 256]
# quantize.weight_only's defaults, for reading its raw options at plan time (tests/test_quantization_aware.py keeps
# them equal to that pass's)
WEIGHT_ONLY_DEFAULTS: dict[str, Any] = {"bits": 4, "block_size": 32, "algorithm": "rtn", "kernel": "nbits",
                                        "op_types": ["MatMul", "Gemm", "Gather"]}


class QuantizationAwareOptions(TrainingOptions):
    """Options of the `distill.quantization_aware` pass."""

    bits: Literal[4] = Field(4, description="bits per weight of the later quantize.weight_only pass")
    block_size: BlockSize = Field(32, description="its block_size: weights per block of the linear layers")
    table_block_size: BlockSize | SkipJsonSchema[None] = Field(None, description="its table_block_size (default: block_size)")
    tables: bool = Field(True, description="round (and freeze) the embedding tables, as that pass does with 'Gather' "
                                           "in its op_types")
    exclude: tuple[str, ...] = Field((), description="module names or fnmatch patterns to keep float (as that pass's "
                                                     "exclude_nodes does by node name), e.g. '*token_type_embeddings*'")
    activations: Literal["float", "int8"] = Field(
        "float", description="'int8': each linear layer's input is also seen rounded to 8 bits per tensor, as that "
                             "pass's kernel 'int8' (ONNX Runtime's dynamic int8 MatMul) rounds it; needs kernel 'int8' there")
    epochs: int = Field(1, ge=1, le=1000, description="passes over the training sentences")
    lr: float = Field(1e-4, gt=0, le=1, description="peak learning rate (AdamW, linear warm-up then linear decay)")

    @property
    def table_block(self) -> int:
        return self.table_block_size or self.block_size


def weight_only_problems(opts: QuantizationAwareOptions, plan: PlanContext, who: str) -> list[str]:
    """The later quantize.weight_only pass must round as this pass trained: same bits and blocks, round to
    nearest, symmetric, tables alike."""
    passes = plan.recipe.raw.get("passes") or []
    later = [p for p in passes[(plan.index or 0) + 1:] if isinstance(p, dict) and p.get("pass") == "quantize.weight_only"]
    if not later:
        return [f"{who} trains the student for a later quantize.weight_only pass's rounding, and the recipe has none "
                "after it: add one, or remove this pass"]
    theirs = {**WEIGHT_ONLY_DEFAULTS, **later[0]}
    table_block = theirs.get("table_block_size") or theirs["block_size"]
    tables = "Gather" in theirs["op_types"]
    problems = [f"{key} {mine} differs from the quantize.weight_only pass's {value}"
                for key, mine, value in (("bits", opts.bits, theirs["bits"]),
                                         ("block_size", opts.block_size, theirs["block_size"]),
                                         ("table_block_size", opts.table_block, table_block))
                if mine != value and (key != "table_block_size" or (tables and opts.tables))]
    if opts.tables != tables:
        problems.append(f"tables {str(opts.tables).lower()}: the quantize.weight_only pass "
                        f"{'quantizes' if tables else 'keeps'} the embedding tables ('Gather' "
                        f"{'in' if tables else 'not in'} its op_types)")
    if theirs["algorithm"] != "rtn":
        problems.append(f"the quantize.weight_only pass's algorithm {theirs['algorithm']!r} re-fits the blocks; this pass "
                        "trains for round to nearest: use algorithm 'rtn' there")
    if opts.activations == "int8" and theirs["kernel"] != "int8":
        problems.append(f"activations 'int8' trains for kernel 'int8' (inputs rounded per tensor); the "
                        f"quantize.weight_only pass runs kernel {theirs['kernel']!r}")
    if theirs.get("symmetric") is False:
        problems.append("the quantize.weight_only pass is asymmetric (symmetric false); this pass trains for its "
                        "symmetric rounding")
    return problems


class DistillQuantizationAware(Pass[QuantizationAwareOptions]):
    """TinyBERT distillation from the source model through the block rounding of a later quantize.weight_only."""

    name = "distill.quantization_aware"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train"})

    def check(self, plan: PlanContext) -> list[str]:
        from shrink_huggingface.support import text_encoder_problems

        return text_encoder_problems(plan, self.name) + weight_only_problems(self.options, plan, self.name)

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        from shrink_huggingface.quantization_aware_train import finetune

        if not artifact.meta.get("hf_config"):
            raise RuntimeError(f"{self.name} needs a Hugging Face encoder (model source 'huggingface')")
        return finetune(self.options, artifact, ctx, self.name)
