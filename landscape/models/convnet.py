"""A small CNN for digits (8x8) and mnist1d (length 40) that adapts to the input's rank.

Three conv+BN+ReLU stages and adaptive pooling, about 11,000 parameters at the default width:
big enough to separate small- from large-batch solutions, small enough for exact checks.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import LandscapeError
from .registry import ShapeCheckedModel, register_model


class ConvNet(ShapeCheckedModel):
    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int], pool: int):
        super().__init__(tuple(input_shape))
        ndim = len(self.input_shape) - 1
        if ndim not in (1, 2):
            raise LandscapeError(f"convnet needs (C, L) or (C, H, W) inputs, got shape {self.input_shape}")
        conv, bn = (nn.Conv1d, nn.BatchNorm1d) if ndim == 1 else (nn.Conv2d, nn.BatchNorm2d)
        maxpool = nn.MaxPool1d if ndim == 1 else nn.MaxPool2d
        avgpool = nn.AdaptiveAvgPool1d if ndim == 1 else nn.AdaptiveAvgPool2d
        layers: list[nn.Module] = []
        c_in = self.input_shape[0]
        for i, c in enumerate(channels):
            layers += [conv(c_in, c, 3, padding=1), bn(c), nn.ReLU()]
            if i == 1:
                layers.append(maxpool(2))
            c_in = c
        layers += [avgpool(pool), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in * pool ** ndim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model
def convnet(input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10,
            channels: Sequence[int] = (12, 24, 32), pool: int = 2) -> ConvNet:
    """Small CNN; 2D convolutions for (C, H, W) inputs, 1D for (C, L)."""
    return ConvNet(input_shape, num_classes, list(channels), pool)
