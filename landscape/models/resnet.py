"""CIFAR ResNets (He et al. 2016) with 1x1-conv projection shortcuts, as in Li et al.'s code.

``resnet20`` has 272,474 parameters for 10 classes. The ``_noshort`` variants drop every skip
connection, which is what makes Li et al.'s ResNet-56-noshort landscape chaotic; ``wrn56_4`` and
the like are their wide ResNets (every width times 4), ``resnet18`` to ``resnet152`` the ImageNet
layouts at CIFAR resolution. Names, layer structure and state_dict keys are those of
tomgoldstein/loss-landscape, so its checkpoints load unchanged.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LandscapeError
from .registry import ShapeCheckedModel, register_model


def projection_shortcut(c_in: int, c_out: int, stride: int, enabled: bool) -> nn.Sequential:
    """Identity, or a 1x1 conv + BN where the shape changes (option B of He et al.)."""
    if enabled and (stride != 1 or c_in != c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential()


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.use_shortcut = shortcut
        self.shortcut = projection_shortcut(c_in, c_out, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.use_shortcut:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(ShapeCheckedModel):
    def __init__(self, depth: int, input_shape: Sequence[int], num_classes: int, shortcut: bool = True,
                 block=BasicBlock, width: int = 16, **block_kwargs):
        super().__init__(tuple(input_shape), strict_spatial=False)
        if (depth - 2) % 6:
            raise LandscapeError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(self.input_shape[0], width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(block(c_in, c_out, stride, shortcut, **block_kwargs))
                c_in = c_out
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _register(depth: int, shortcut: bool, k: int = 1, name: str | None = None) -> None:
    name = name or (f"resnet{depth}" if k == 1 else f"wrn{depth}_{k}") + ("" if shortcut else "_noshort")

    def ctor(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> CifarResNet:
        return CifarResNet(depth, input_shape, num_classes, shortcut=shortcut, width=16 * k)

    ctor.__name__ = ctor.__qualname__ = name
    wide = f" {k}x wide (stages of {16 * k}, {32 * k}, {64 * k} channels)" if k > 1 else ""
    ctor.__doc__ = f"CIFAR ResNet-{depth}{wide}{'' if shortcut else ' without skip connections'}."
    register_model(ctor, name=name)


# The CIFAR networks of Li et al. 2018 under the names tomgoldstein/loss-landscape gives them.
for _depth in (20, 56, 110):
    for _short in (True, False):
        _register(_depth, _short)
for _depth in (32, 44):
    _register(_depth, False)
_register(50, False, name="resnet50_16_noshort")  # its depth-50 CIFAR ResNet (16 base channels)
for _k in (2, 4, 8):
    for _short in (True, False):
        _register(56, _short, _k)
for _k in (2, 4):
    _register(110, False, _k)


class Bottleneck(nn.Module):
    """1x1 conv to ``planes``, 3x3 conv (with the stride), 1x1 conv to ``4 * planes``, each with BN.

    Without the shortcut the block ends at the last BN, with no ReLU: the older code's
    ``Bottleneck_noshortcut`` does so, and its checkpoints were trained that way.
    """

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, shortcut: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.use_shortcut = shortcut
        self.shortcut = projection_shortcut(c_in, 4 * planes, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x)) if self.use_shortcut else out


class ResNet4(ShapeCheckedModel):
    """The ImageNet ResNets (18 to 152 layers) at CIFAR resolution: a 3x3 stem to 64 channels and
    four stages of 64, 128, 256, 512 (times the block's expansion) channels, as Li et al.'s code has them."""

    def __init__(self, blocks: Sequence[int], bottleneck: bool, input_shape: Sequence[int], num_classes: int,
                 shortcut: bool = True):
        super().__init__(tuple(input_shape), strict_spatial=False)
        block, expansion = (Bottleneck, 4) if bottleneck else (BasicBlock, 1)
        self.conv1 = nn.Conv2d(self.input_shape[0], 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c_in = 64
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            layers = []
            for i in range(n):
                layers.append(block(c_in, planes, 2 if stage > 0 and i == 0 else 1, shortcut))
                c_in = planes * expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


_IMAGENET_DEPTHS = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True),
                    101: ((3, 4, 23, 3), True), 152: ((3, 8, 36, 3), True)}


def _register4(depth: int, shortcut: bool) -> None:
    name = f"resnet{depth}" + ("" if shortcut else "_noshort")
    blocks, bottleneck = _IMAGENET_DEPTHS[depth]

    def ctor(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> ResNet4:
        return ResNet4(blocks, bottleneck, input_shape, num_classes, shortcut)

    ctor.__name__ = ctor.__qualname__ = name
    ctor.__doc__ = f"ResNet-{depth} (ImageNet layout) for CIFAR{'' if shortcut else ' without skip connections'}."
    register_model(ctor, name=name)


for _depth in _IMAGENET_DEPTHS:
    for _short in (True, False):
        _register4(_depth, _short)
