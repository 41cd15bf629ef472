"""Options several families read: training (distillation, fine-tunes), `export.onnx` and `prune.structured`.
Imports no torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink import PassOptions


class TrainingOptions(PassOptions):
    """KD loss, optimizer, schedule, augmentation and seed; each pass sets its own `lr` and epochs."""

    temperature: float = Field(2.0, gt=0, le=20, description="softmax temperature T of the KD term (1–2 suits a converged teacher)")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KD term; 1 - alpha weights cross-entropy on the labels")
    batch_size: int = Field(64, ge=1, le=65536, description="training batch size")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="optimizer (adam: AdamW when weight_decay > 0; sgd: Nesterov momentum 0.9)")
    weight_decay: float = Field(0.0, ge=0, le=1, description="weight decay")
    schedule: Literal["onecycle", "cosine", "constant"] = Field("onecycle", description="learning-rate schedule over all steps")
    augment: bool = Field(True, description="train-time augmentation: the data source's own when it declares one (kws: data.augment), else random ±max_shift pixel shifts of image inputs (zero pad + crop)")
    max_shift: int = Field(2, ge=0, le=16, description="largest augmentation shift in pixels")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="added to the recipe seed")


Importance = Literal["magnitude", "taylor", "bn_scale", "ablation"]
ENCODER_ONLY = ("heads_ratio", "ffn_ratio")
CHANNELS_ONLY = ("ratio", "ignore", "alpha", "augment", "max_shift")


class ExportOptions(PassOptions):
    """Options of `export.onnx`, which every family that exports to ONNX reads (`OnnxExporter`)."""

    opset: int | None = Field(None, ge=7, le=23, description="ai.onnx opset; default: the target's export_opset")
    exporter: Literal["torchscript", "dynamo"] = Field("torchscript", description="torch.onnx exporter to use")
    dynamic_batch: bool = Field(True, description="make the batch dimension dynamic")
    simplify: bool = Field(True, description="simplify the graph with onnxsim")
    tolerance: float = Field(1e-4, gt=0, le=1, description="largest allowed max-abs difference between torch and ONNX Runtime outputs")
    parity_samples: int = Field(64, ge=1, le=4096, description="eval inputs used for the parity check")
    output_name: str = Field("output", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", description="name of the model output")


class StructuredPruneOptions(TrainingOptions):
    """Options of `prune.structured`: channels (`ratio`) for convolutional and linear nets, attention heads
    (`heads_ratio`) and feed-forward channels (`ffn_ratio`) for transformer encoders; the model's family
    says which it supports (`StructuredPruner.check_structured_pruning`)."""

    search_space = {"ratio": {"float": [0.05, 0.7]}, "finetune_epochs": {"int": [5, 40], "step": 5}}

    ratio: float = Field(0.5, gt=0, le=0.95, description="fraction of channels to remove (0.5 leaves ~25% of the parameters)")
    importance: Importance = Field("magnitude", description="channel ranking: 'magnitude' (group L2 norm), 'taylor' "
                                   "(first-order Taylor on training batches) or 'bn_scale' (|BatchNorm gamma|); encoders: "
                                   "'magnitude' (L2 norm of each head's Q/K/V/O weights) or 'ablation' (cosine drop to the "
                                   "unpruned outputs with the head alone masked, on training sentences)")
    heads_ratio: Annotated[float, Field(gt=0, lt=1)] | SkipJsonSchema[None] = Field(
        None, description="transformer encoders: fraction of attention heads to remove from each layer (or across "
                          "layers with global_pruning); every layer keeps at least one head")
    ffn_ratio: Annotated[float, Field(gt=0, le=0.95)] | SkipJsonSchema[None] = Field(
        None, description="transformer encoders: fraction of feed-forward intermediate channels to remove per layer")
    global_pruning: bool = Field(False, description="rank channels across all layers instead of removing `ratio` from each layer")
    max_layer_ratio: Annotated[float, Field(gt=0, le=1)] | SkipJsonSchema[None] = Field(None, description="most any single layer may lose with "
                                          "global_pruning (default: the larger of ratio and 0.9)")
    round_to: Annotated[int, Field(ge=1, le=256)] | SkipJsonSchema[None] = Field(None, description="keep channel counts a multiple of this (e.g. 4 or 8 for SIMD)")
    ignore: list[str] = Field(default_factory=list, max_length=1000,
                              description="module names never pruned (the output layer is always kept)")
    finetune_epochs: int = Field(3, ge=0, le=1000, description="recovery fine-tune epochs after pruning (0: none)")
    finetune_kd: bool = Field(True, description="fine-tune with Hinton KD from the unpruned model")
    lr: Annotated[float, Field(gt=0, le=10)] | SkipJsonSchema[None] = Field(
        None, description="fine-tune peak learning rate (default 2e-3; 1e-4 for encoders)")
    taylor_batches: int = Field(4, ge=1, le=1000, description="training batches that rank channels for 'taylor' "
                                "(heads and FFN channels for 'ablation')")

    @model_validator(mode="after")
    def _consistent(self) -> StructuredPruneOptions:
        if self.encoder:
            self._encoder_consistent()
        elif self.importance == "ablation":
            raise ValueError("importance 'ablation' applies only to encoder pruning (heads_ratio / ffn_ratio)")
        if self.max_layer_ratio is not None and self.ratio > self.max_layer_ratio:
            raise ValueError(f"ratio {self.ratio} is greater than max_layer_ratio {self.max_layer_ratio}")
        if self.finetune_epochs == 0 and "finetune_kd" in self.model_fields_set and self.finetune_kd:
            raise ValueError("finetune_kd needs finetune_epochs > 0")
        for key in ("temperature", "alpha"):
            if key in self.model_fields_set and not (self.finetune_kd and self.finetune_epochs > 0):
                raise ValueError(f"{key} applies only to a KD fine-tune (finetune_kd with finetune_epochs > 0)")
        if "taylor_batches" in self.model_fields_set and self.importance not in ("taylor", "ablation"):
            raise ValueError("taylor_batches applies only to importance 'taylor' or 'ablation'")
        return self

    @property
    def encoder(self) -> bool:
        """Head/FFN pruning of a transformer encoder rather than channel pruning."""
        return self.heads_ratio is not None or self.ffn_ratio is not None

    def _encoder_consistent(self) -> None:
        given = [k for k in CHANNELS_ONLY if k in self.model_fields_set]
        if given:
            raise ValueError(f"{', '.join(given)} applies to channel pruning, not to encoder pruning with "
                             "heads_ratio / ffn_ratio")
        if self.importance not in ("magnitude", "ablation"):
            raise ValueError(f"importance {self.importance!r} does not apply to encoder pruning: use 'magnitude' "
                             "or 'ablation' (the cosine KD loss has no gradient at the unpruned model, so 'taylor' "
                             "would rank nothing)")
        if "finetune_kd" in self.model_fields_set and not self.finetune_kd and self.finetune_epochs > 0:
            raise ValueError("an encoder's recovery fine-tune is KD from the unpruned model (text data has no "
                             "labels): finetune_kd cannot be false; set finetune_epochs 0 for no fine-tune")
        if self.max_layer_ratio is not None and not (self.heads_ratio is not None and self.global_pruning):
            raise ValueError("max_layer_ratio applies to encoders only with heads_ratio and global_pruning")
        if self.global_pruning and self.heads_ratio is None:
            raise ValueError("global_pruning applies to encoders only with heads_ratio (FFN channels are pruned per layer)")
        if self.round_to is not None and self.ffn_ratio is None:
            raise ValueError("round_to applies to encoders only with ffn_ratio (it rounds the kept FFN widths)")
