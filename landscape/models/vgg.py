"""VGG-9 of Li et al. 2018 (the network of their CIFAR-10 figures), and a wider global-pooling variant.

``vgg9`` is the published network layer for layer, with the state_dict keys of
tomgoldstein/loss-landscape, so its ``.t7`` checkpoints load unchanged: seven 3x3 conv+BN+ReLU
layers (64, 64, M, 128, 128, M, 256, 256, 256, M; M is a 2x2 max-pool with ceil rounding), the
4x4x256 map flattened into FC-256 + BN + ReLU (``fc``), and the linear ``classifier``: 2,789,706
parameters for 10 classes. ``vgg9_gap`` (this project's ``vgg9`` before it matched the paper) has
widths 64-128-256-256-512-512-512, global average pooling and FC-256: 7.0M parameters.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .registry import ShapeCheckedModel, register_model

_LI_VGG9 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
_GAP_VGG9 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, "M"]


def conv_stack(cfg: list, c_in: int, ceil_mode: bool = False) -> tuple[nn.Sequential, int, int]:
    """conv3x3+BN+ReLU per number, 2x2 max-pool per "M"; returns the stack, its width and pool count."""
    layers: list[nn.Module] = []
    pools = 0
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            pools += 1
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c_in = v
    return nn.Sequential(*layers), c_in, pools


class VGG(ShapeCheckedModel):
    """Li et al.'s VGG: conv stack, flatten, ``fc`` (Linear + BN + ReLU to the last width), ``classifier``."""

    def __init__(self, cfg: list, input_shape: Sequence[int], num_classes: int):
        super().__init__(tuple(input_shape))
        if len(self.input_shape) != 3:
            raise ValueError(f"VGG needs image inputs (C, H, W), got input_shape={self.input_shape}")
        self.features, width, pools = conv_stack(cfg, self.input_shape[0], ceil_mode=True)
        h, w = self.input_shape[1:]
        for _ in range(pools):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.fc = nn.Sequential(nn.Linear(width * h * w, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.fc(self.features(x).flatten(1)))


class GapVGG(ShapeCheckedModel):
    """A VGG with global average pooling before FC-256 + BN + ReLU and the classifier."""

    def __init__(self, cfg: list, input_shape: Sequence[int], num_classes: int):
        super().__init__(tuple(input_shape), strict_spatial=False)
        stack, width, _ = conv_stack(cfg, self.input_shape[0])
        self.features = nn.Sequential(*stack, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(width, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
                                        nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model
def vgg9(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> VGG:
    """VGG-9 of Li et al. 2018 exactly (loads tomgoldstein/loss-landscape's vgg9 checkpoints)."""
    return VGG(_LI_VGG9, input_shape, num_classes)


@register_model
def vgg9_gap(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> GapVGG:
    """Wider VGG-9, global average pooling, 7.0M parameters: what ``vgg9`` built before it matched Li et al."""
    return GapVGG(_GAP_VGG9, input_shape, num_classes)
