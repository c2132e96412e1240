"""DenseNet-BC (Huang et al. 2017) for 32x32 inputs, as Li et al. 2018 plotted DenseNet-121.

A 3x3 stem to ``2 * growth`` channels, four dense blocks of bottleneck layers (BN-ReLU-1x1 conv to
``4 * growth``, BN-ReLU-3x3 conv to ``growth``, the new maps placed before the block's input), and
between blocks a transition (BN-ReLU-1x1 conv halving the channels, 2x2 average pool); then
BN-ReLU, global average pooling and the classifier. Module names and the concatenation order are
those of tomgoldstein/loss-landscape, so its ``densenet121`` checkpoints load unchanged.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ShapeCheckedModel, register_model


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return torch.cat([new, x], 1)


class Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(ShapeCheckedModel):
    def __init__(self, blocks: Sequence[int], growth: int, input_shape: Sequence[int], num_classes: int,
                 reduction: float = 0.5):
        super().__init__(tuple(input_shape), strict_spatial=False)
        c = 2 * growth
        self.conv1 = nn.Conv2d(self.input_shape[0], c, 3, padding=1, bias=False)
        for i, n in enumerate(blocks, start=1):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            setattr(self, f"dense{i}", nn.Sequential(*layers))
            if i < len(blocks):
                c_out = int(c * reduction)
                setattr(self, f"trans{i}", Transition(c, c_out))
                c = c_out
        self.n_blocks = len(blocks)
        self.bn = nn.BatchNorm2d(c)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = self.conv1(x)
        for i in range(1, self.n_blocks + 1):
            out = getattr(self, f"dense{i}")(out)
            if i < self.n_blocks:
                out = getattr(self, f"trans{i}")(out)
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


@register_model
def densenet121(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> DenseNet:
    """DenseNet-121 (blocks of 6, 12, 24, 16 layers, growth rate 32) for 32x32 images."""
    return DenseNet((6, 12, 24, 16), 32, input_shape, num_classes)
