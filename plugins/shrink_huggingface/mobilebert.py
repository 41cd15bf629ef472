"""`distill.mobilebert`: a bottleneck student (transformers' MobileBERT) trained by progressive layer-wise
knowledge transfer from a BERT-family teacher, then a final distillation over the whole model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PassOptions, PlanContext
from shrink_huggingface.tinybert import LayerIndex


class BottleneckShape(PassOptions):
    """The bottleneck student; the inter-block width is always the teacher's hidden size."""

    layers: Annotated[int, Field(ge=1, le=64)] | SkipJsonSchema[None] = Field(
        None, description="bottleneck blocks (default: the teacher's layer count)")
    intra_size: int = Field(128, ge=8, le=8192, description="intra-block width: the bottleneck projections map the "
                                                            "teacher-wide hidden state to this width and back")
    heads: Annotated[int, Field(ge=1, le=128)] | SkipJsonSchema[None] = Field(
        None, description="attention heads per block (default: the teacher's; intra_size must be a multiple)")
    ffn_size: Annotated[int, Field(ge=8, le=65536)] | SkipJsonSchema[None] = Field(
        None, description="feed-forward width inside a block (default: 4 x intra_size)")
    ffn_stack: int = Field(1, ge=1, le=8, description="stacked feed-forward networks per block (MobileBERT uses 4)")
    embedding_size: Annotated[int, Field(ge=8, le=8192)] | SkipJsonSchema[None] = Field(
        None, description="word-embedding width; below the teacher's hidden size the table is factorized (rank-"
                          "embedding_size SVD of the teacher's table, then a linear map to the hidden size); default: "
                          "the teacher's hidden size (copied as is)")
    norm: Literal["layer_norm", "no_norm"] = Field("layer_norm", description="'layer_norm', or MobileBERT's "
                                                   "'no_norm' (an element-wise affine map, cheaper at inference)")

    @model_validator(mode="after")
    def _divisible(self) -> BottleneckShape:
        if self.heads is not None and self.intra_size % self.heads:
            raise ValueError(f"intra_size {self.intra_size} is not a multiple of heads {self.heads}")
        return self


class TransferWeights(PassOptions):
    """Weights of the layer-wise transfer terms (0 switches a term off)."""

    feature_map: float = Field(1.0, ge=0, le=1000, description="MSE between the block's output and its teacher layer's")
    attention: float = Field(1.0, ge=0, le=1000, description="KL divergence of the teacher's attention distributions "
                                                             "from the student's, per head (head-averaged when counts differ)")

    @model_validator(mode="after")
    def _some(self) -> TransferWeights:
        if not (self.feature_map or self.attention):
            raise ValueError("at least one transfer weight must be positive")
        return self


class FinalWeights(PassOptions):
    """Weights of the final whole-model distillation terms (0 switches a term off)."""

    prediction: float = Field(1.0, ge=0, le=1000, description="1 - cosine of the sentence embeddings")
    feature_map: float = Field(0.0, ge=0, le=1000, description="feature-map MSE, averaged over the blocks")
    attention: float = Field(0.0, ge=0, le=1000, description="attention KL, averaged over the blocks")

    @model_validator(mode="after")
    def _some(self) -> FinalWeights:
        if not (self.prediction or self.feature_map or self.attention):
            raise ValueError("at least one final weight must be positive")
        return self


class DistillMobileBERTOptions(PassOptions):
    """Options of the `distill.mobilebert` pass."""

    student: BottleneckShape = Field(default_factory=BottleneckShape, description="the bottleneck student's shape")
    layer_map: Literal["uniform"] | list[LayerIndex] = Field(
        "uniform", description="teacher layer (0-based) each block learns from: 'uniform' (block i ← teacher layer "
                               "(i+1)·T/S − 1) or a list")
    weights: TransferWeights = Field(default_factory=TransferWeights, description="progressive-stage loss weights")
    final_weights: FinalWeights = Field(default_factory=FinalWeights, description="final-stage loss weights")
    stage_epochs: int = Field(1, ge=0, le=1000, description="epochs per progressive stage (0 skips the stages)")
    epochs: int = Field(2, ge=0, le=1000, description="epochs of the final whole-model distillation (0 skips it)")
    batch_size: int = Field(32, ge=2, le=4096, description="sentences per step")
    lr: float = Field(1e-3, gt=0, le=1, description="peak learning rate of each progressive stage")
    final_lr: float = Field(5e-4, gt=0, le=1, description="peak learning rate of the final distillation")
    warmup: float = Field(0.06, ge=0, le=0.5, description="fraction of each stage's steps spent warming up")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay")
    dropout: float = Field(0.0, ge=0, lt=1, description="the student's dropout while distilling")
    max_sentences: Annotated[int, Field(ge=2, le=10_000_000)] | SkipJsonSchema[None] = Field(
        None, description="use at most this many training sentences")
    stage_sentences: Annotated[int, Field(ge=2, le=10_000_000)] | SkipJsonSchema[None] = Field(
        None, description="sentences per progressive stage (the first ones; default: all)")
    max_length: Annotated[int, Field(ge=2, le=4096)] | SkipJsonSchema[None] = Field(
        None, description="truncate training sentences to this many tokens (default: the model's max_length)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="added to the recipe seed")

    @model_validator(mode="after")
    def _consistent(self) -> DistillMobileBERTOptions:
        if isinstance(self.layer_map, list):
            if self.student.layers is not None and len(self.layer_map) != self.student.layers:
                raise ValueError(f"layer_map has {len(self.layer_map)} entries for a {self.student.layers}-block student")
            if self.layer_map != sorted(self.layer_map):
                raise ValueError("layer_map must be non-decreasing")
        if not (self.stage_epochs or self.epochs):
            raise ValueError("stage_epochs and epochs are both 0: nothing would be trained")
        return self


class DistillMobileBERT(Pass[DistillMobileBERTOptions]):
    """MobileBERT distillation: bottleneck student, progressive block-by-block transfer, then whole-model distillation."""

    name = "distill.mobilebert"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train"})

    def check(self, plan: PlanContext) -> list[str]:
        from shrink_huggingface.support import text_encoder_problems

        return text_encoder_problems(plan, self.name, task="sentence-embedding")

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        from shrink_huggingface.mobilebert_train import distill

        if not artifact.meta.get("hf_config"):
            raise RuntimeError("distill.mobilebert needs a Hugging Face encoder (model source 'huggingface')")
        return distill(self.options, artifact, ctx, self.name)

def options(**values: Any) -> DistillMobileBERTOptions:
    """Validated options (for tests and scripts)."""
    return DistillMobileBERT.Options(**values)
