"""VGG-9 as in Li et al. 2018: 7 conv+BN+ReLU layers, FC-256 with BN, then the classifier."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import ShapeCheckedModel, register_model

_VGG9 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, "M"]


class VGG(ShapeCheckedModel):
    def __init__(self, cfg: list, input_shape: Sequence[int], num_classes: int):
        super().__init__(tuple(input_shape), strict_spatial=False)
        layers: list[nn.Module] = []
        c_in = self.input_shape[0]
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c_in = v
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(c_in, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
                                        nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model
def vgg9(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10) -> VGG:
    return VGG(_VGG9, input_shape, num_classes)
