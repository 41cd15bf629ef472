"""CNNs for 10-class digit classification on `[N, 1, 32, 32]` float32 inputs in [0, 1].

One architecture family, `DigitsCNN(width)`, gives both models:

* `teacher()` (width 1.0): a deliberately over-sized network.
  11,010,688 MACs and 210,410 parameters at batch 1.
* `student()` (width 0.25): the same layers at a quarter of the channel widths.
  743,584 MACs and 13,442 parameters at batch 1.
* `strided_student()` (width 0.25, `strided=True`): the quarter-width layers, but each block followed
  by a max-pool is one stride-2 conv instead, so the network downsamples before it convolves.
  301,216 MACs (conv and linear), 13,442 parameters and three fewer graph nodes: on a model this small each node costs
  about as much as its arithmetic.

Layout (teacher widths)::

    conv3x3 1->32   @32x32 + BN + ReLU, maxpool 2
    conv3x3 32->64  @16x16 + BN + ReLU, maxpool 2
    conv3x3 64->64  @8x8   + BN + ReLU
    conv3x3 64->96  @8x8   + BN + ReLU, maxpool 2
    flatten (96*4*4 = 1536) -> Linear(1536->64) -> ReLU -> Linear(64->10) = `classifier`

MACs count conv and linear multiply-accumulates (BN, ReLU and pooling excluded).
The last layer is always the `nn.Linear` reachable as `model.classifier`.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10
INPUT_SHAPE = (1, 1, 32, 32)

# Teacher channel widths of the four conv blocks, and of the hidden linear layer.
_CONV_CHANNELS = (32, 64, 64, 96)
_POOL_AFTER = (True, True, False, True)
_HIDDEN = 64


def _scaled(channels: int, width: float) -> int:
    """Scale a channel count by `width`, keeping at least one channel."""
    return max(1, int(round(channels * width)))


def _conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 same-padding conv (no bias), BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DigitsCNN(nn.Module):
    """A small VGG-style CNN whose channel widths scale with `width`."""

    def __init__(self, width: float = 1.0, num_classes: int = NUM_CLASSES, strided: bool = False) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.width = width
        layers: list[nn.Module] = []
        in_channels = INPUT_SHAPE[1]
        spatial = INPUT_SHAPE[2]
        for channels, pool in zip(_CONV_CHANNELS, _POOL_AFTER):
            out_channels = _scaled(channels, width)
            if pool and strided:
                layers.append(_conv_block(in_channels, out_channels, stride=2))
            else:
                layers.append(_conv_block(in_channels, out_channels))
                if pool:
                    layers.append(nn.MaxPool2d(kernel_size=2))
            if pool:
                spatial //= 2
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten(1)
        hidden = _scaled(_HIDDEN, width)
        self.fc = nn.Linear(in_channels * spatial * spatial, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits `[N, num_classes]` for images `[N, 1, 32, 32]`."""
        x = self.features(x)
        x = self.flatten(x)
        x = self.relu(self.fc(x))
        return self.classifier(x)


def teacher() -> nn.Module:
    """The full-width (over-sized) teacher: ~11.0 M MACs, ~210 k parameters."""
    return DigitsCNN(width=1.0)


def student() -> nn.Module:
    """The quarter-width student: ~0.74 M MACs, ~13.4 k parameters."""
    return DigitsCNN(width=0.25)


def strided_student() -> nn.Module:
    """The quarter-width student that downsamples with stride-2 convs instead of conv + max-pool."""
    return DigitsCNN(width=0.25, strided=True)
