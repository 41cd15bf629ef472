"""Options shared by the torch passes that train (distillation, pruning fine-tunes). Imports no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    augment: bool = Field(True, description="random ±max_shift pixel shifts of image inputs (zero pad + crop)")
    max_shift: int = Field(2, ge=0, le=16, description="largest augmentation shift in pixels")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="added to the recipe seed")
