"""ShiftResNets (Wu et al. 2017): CIFAR ResNets whose 3x3 convolutions become shift modules.

Each residual block is the paper's conv-shift-conv module, following alvinwan/shiftresnet-cifar:
1x1 conv expanding ``C_out`` to ``expansion * C_out`` channels, BN, ReLU, the zero-parameter
shift, then a 1x1 conv (carrying the block's stride, so the shift sees the full resolution) back
to ``C_out`` and BN, plus the ResNet's shortcut. The stem 3x3 conv, stages (16, 32, 64 channels),
projection shortcuts and classifier are those of `resnet.CifarResNet`, so ShiftResNet-20 with
expansion 3 has the published 95,642 parameters for 10 classes (ResNet-20: 272,474); the
published expansions are 1, 3, 6 and 9.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LandscapeError
from ..ops.shift import Shift
from .registry import register_model
from .resnet import CifarResNet, projection_shortcut

PUBLISHED_EXPANSIONS = (1, 3, 6, 9)


class ShiftBlock(nn.Module):
    """Residual conv-shift-conv block; ``shortcut`` is accepted for `CifarResNet` and must be True."""

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: bool = True, expansion: int = 6,
                 kernel_size: int = 3, dilation: int = 1):
        super().__init__()
        mid = int(c_out * expansion)
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.shift = Shift(kernel_size, dilation)
        self.conv2 = nn.Conv2d(mid, c_out, 1, stride, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.use_shortcut = shortcut
        self.shortcut = projection_shortcut(c_in, c_out, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.shift(out)))
        if self.use_shortcut:
            out = out + self.shortcut(x)
        return F.relu(out)


class ShiftResNet(CifarResNet):
    """A `CifarResNet` built from `ShiftBlock`s."""

    def __init__(self, depth: int, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
                 expansion: int = 6, kernel_size: int = 3, dilation: int = 1):
        if isinstance(expansion, bool) or not isinstance(expansion, numbers.Integral) or expansion < 1:
            raise LandscapeError(f"ShiftResNet expansion must be a positive integer (published: "
                                 f"{', '.join(map(str, PUBLISHED_EXPANSIONS))}), got {expansion!r}")
        if len(tuple(input_shape)) != 3:
            raise LandscapeError(f"ShiftResNet needs image inputs (C, H, W), got input_shape={tuple(input_shape)}; "
                                 f"use a dataset of images (e.g. digits, cifar10)")
        super().__init__(depth, input_shape, num_classes, shortcut=True, block=ShiftBlock,
                         expansion=int(expansion), kernel_size=kernel_size, dilation=dilation)
        self.expansion = int(expansion)


def _register(depth: int) -> None:
    name = f"shiftresnet{depth}"

    def ctor(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, expansion: int = 6,
             kernel_size: int = 3, dilation: int = 1) -> ShiftResNet:
        return ShiftResNet(depth, input_shape, num_classes, expansion, kernel_size, dilation)

    ctor.__name__ = ctor.__qualname__ = name
    ctor.__doc__ = f"ShiftResNet-{depth} (Wu et al. 2017): ResNet-{depth} with conv-shift-conv blocks."
    register_model(ctor, name=name)


for _depth in (20, 56, 110):
    _register(_depth)
