"""DS-CNNs for 12-class keyword spotting on `[N, 1, 49, 10]` MFCCs (49 frames of 10 coefficients, time down).

The architecture of MLPerf Tiny's keyword-spotting reference (Zhang et al., "Hello Edge", 2017): a 10x4
stride-2 convolution, then depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each with BatchNorm and
ReLU), global average pooling and one linear layer, `model.classifier`.

* `large_teacher()`: 128 channels, 5 blocks: the teacher of `recipes/kws-cortex-m4.json` (`examples/kws/teacher.pt`).
* `large_student()`: 96 channels, 5 blocks: the fresh student `distill.kd` trains in the recipe.
* `teacher()`: 64 channels, 4 blocks — MLPerf Tiny's DS-CNN size; the recipe's teacher before.
* `wide_student()`: 64 channels, 4 blocks: the recipe's student before (`bench/kws_validation.py` compares them on
  held-out training voices).
* `student()`: 48 channels, 4 blocks, the recipe's student before that.

`python examples/kws/model.py` prints their parameters and MACs (conv and linear multiply-accumulates).
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 12
INPUT_SHAPE = (1, 1, 49, 10)


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU()]


class DSCNN(nn.Module):
    """A depthwise-separable CNN over MFCC "images"; `channels` wide, `blocks` separable blocks."""

    def __init__(self, channels: int = 64, blocks: int = 4, num_classes: int = NUM_CLASSES, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, channels, (10, 4), stride=(2, 2), padding=(5, 1), bias=False),
                                   *_bn_relu(channels)]
        for _ in range(blocks):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False), *_bn_relu(channels),
                       nn.Conv2d(channels, channels, 1, bias=False), *_bn_relu(channels)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x).mean(dim=(2, 3))))


def teacher() -> DSCNN:
    return DSCNN(64, 4)


def student() -> DSCNN:
    return DSCNN(48, 4)


def wide_student() -> DSCNN:
    return DSCNN(64, 4)


def large_teacher() -> DSCNN:
    return DSCNN(128, 5)


def large_student() -> DSCNN:
    return DSCNN(96, 5)


if __name__ == "__main__":
    from shrink_common.classifier import count_macs

    for name, build in (("teacher", teacher), ("student", student), ("wide_student", wide_student),
                        ("large_teacher", large_teacher), ("large_student", large_student)):
        model = build().eval()
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params:,} parameters, {count_macs(model, torch.zeros(INPUT_SHAPE)):,} MACs")
