"""`distill.tinybert`: TinyBERT layer-wise distillation of a BERT-family encoder into a shallower/narrower one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import Artifact, Context, Pass, PassOptions, PlanContext

LayerIndex = Annotated[int, Field(ge=0, le=255)]


class StudentShape(PassOptions):
    """The student's architecture; unset fields keep the teacher's value."""

    layers: int = Field(ge=1, le=64, description="transformer layers")
    hidden_size: Annotated[int, Field(ge=8, le=8192)] | SkipJsonSchema[None] = Field(None, description="hidden width (default: the teacher's)")
    heads: Annotated[int, Field(ge=1, le=128)] | SkipJsonSchema[None] = Field(None, description="attention heads (default: the teacher's)")
    ffn_size: Annotated[int, Field(ge=8, le=65536)] | SkipJsonSchema[None] = Field(None, description="feed-forward width (default: the teacher's)")
    embedding_size: Annotated[int, Field(ge=8, le=8192)] | SkipJsonSchema[None] = Field(
        None, description="factorize the word table (ALBERT-style): tokens × this width, projected up to hidden_size; "
                          "initialised from the teacher's table by truncated SVD (default: unfactorized)")

    @model_validator(mode="after")
    def _divisible(self) -> StudentShape:
        if self.hidden_size is not None and self.heads is not None and self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of heads {self.heads}")
        if self.embedding_size is not None and self.hidden_size is not None and self.embedding_size >= self.hidden_size:
            raise ValueError(f"embedding_size {self.embedding_size} must be below hidden_size {self.hidden_size} to factorize")
        return self


class LossWeights(PassOptions):
    """Weights of the four TinyBERT loss terms (0 switches a term off)."""

    embedding: float = Field(1.0, ge=0, le=1000, description="MSE between embedding-layer outputs")
    hidden: float = Field(1.0, ge=0, le=1000, description="MSE between mapped layers' hidden states (projected when widths differ)")
    attention: float = Field(1.0, ge=0, le=1000, description="MSE between mapped layers' pre-softmax attention scores, padding masked")
    prediction: float = Field(1.0, ge=0, le=1000, description="1 - cosine of sentence embeddings, or logit KD (T^2 KL) for classifiers")

    @model_validator(mode="after")
    def _some(self) -> LossWeights:
        if not any((self.embedding, self.hidden, self.attention, self.prediction)):
            raise ValueError("at least one loss weight must be positive")
        return self


class TrainingOptions(PassOptions):
    """What a TinyBERT training loop takes (`tinybert_train.train`): loss weights, schedule, data and arithmetic."""

    weights: LossWeights = Field(default_factory=LossWeights, description="loss term weights")
    temperature: float = Field(1.0, gt=0, le=20, description="softmax temperature of the logit KD term (classifiers)")
    epochs: int = Field(3, ge=1, le=1000, description="passes over the training sentences")
    batch_size: int = Field(32, ge=2, le=4096, description="sentences per step")
    lr: float = Field(1e-4, gt=0, le=1, description="peak learning rate (AdamW, linear warm-up then linear decay)")
    warmup: float = Field(0.06, ge=0, le=0.5, description="fraction of the steps spent warming up")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay")
    max_sentences: Annotated[int, Field(ge=2, le=10_000_000)] | SkipJsonSchema[None] = Field(
        None, description="use at most this many training sentences")
    max_length: Annotated[int, Field(ge=2, le=4096)] | SkipJsonSchema[None] = Field(
        None, description="truncate training sentences to this many tokens (default: the model's max_length)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="added to the recipe seed")
    teacher_cache: Literal["auto", "off"] = Field(
        "auto", description="'auto': with more than one epoch, run the teacher once over the training sentences and "
                            "read its targets (float16, on disk in the compile's work folder) in every epoch, when the "
                            "disk has room; 'off': run the teacher in every step")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="the arithmetic of the student's training and of the teacher's forward passes: 'bfloat16' "
                            "autocasts their matrix products to bf16 (weights, optimizer and losses stay float32); "
                            "'auto': bfloat16 where the CPU multiplies it natively (AVX512-BF16, AMX, Arm BF16), else float32")


class DistillTinyBERTOptions(TrainingOptions):
    """Options of the `distill.tinybert` pass."""

    student: StudentShape | SkipJsonSchema[None] = Field(None, description="the student's shape; or 'keep_layers'")
    keep_layers: list[LayerIndex] | SkipJsonSchema[None] = Field(
        None, min_length=1, max_length=64, description="student = these teacher layers (0-based, ascending), initialised "
                                                         "from them and mapped to them; instead of 'student'")
    layer_map: Literal["uniform"] | list[LayerIndex] | SkipJsonSchema[None] = Field(
        None, description="teacher layer (0-based) each student layer learns from: 'uniform' (student layer i ← teacher "
                          "layer (i+1)·T/S − 1) or a list; default: 'uniform', or keep_layers")
    init: Literal["teacher", "random"] = Field("teacher", description="'teacher': copy the embeddings and the mapped "
                                               "teacher layers' tensors wherever the shapes match; 'random': fresh weights")
    dropout: float = Field(0.0, ge=0, lt=1, description="the student's dropout while distilling (hidden and attention); "
                                                       "0 favours fidelity to the teacher")

    @model_validator(mode="after")
    def _consistent(self) -> DistillTinyBERTOptions:
        if (self.student is None) == (self.keep_layers is None):
            raise ValueError("give exactly one of 'student' (a shape) and 'keep_layers' (teacher layers to keep)")
        if self.keep_layers is not None and list(self.keep_layers) != sorted(set(self.keep_layers)):
            raise ValueError("keep_layers must be ascending and distinct")
        layers = self.student.layers if self.student is not None else len(self.keep_layers or [])
        if isinstance(self.layer_map, list) and len(self.layer_map) != layers:
            raise ValueError(f"layer_map has {len(self.layer_map)} entries for a {layers}-layer student")
        if isinstance(self.layer_map, list) and self.layer_map != sorted(self.layer_map):
            raise ValueError("layer_map must be non-decreasing (student layer i learns from a teacher layer at or above i-1's)")
        return self


class DistillTinyBERT(Pass[DistillTinyBERTOptions]):
    """TinyBERT distillation: embedding, hidden-state, attention-score and prediction losses over a layer mapping."""

    name = "distill.tinybert"
    consumes = ("torch",)
    produces = "torch"
    requires = frozenset({"train"})

    def check(self, plan: PlanContext) -> list[str]:
        from shrink_huggingface.support import text_encoder_problems

        return text_encoder_problems(plan, self.name)

    def run(self, artifact: Artifact, ctx: Context) -> Artifact:
        from shrink_huggingface.tinybert_train import distill

        if not artifact.meta.get("hf_config"):
            raise RuntimeError("distill.tinybert needs a Hugging Face encoder (model source 'huggingface')")
        return distill(self.options, artifact, ctx, self.name)
