"""Fully connected network: the smallest model whose exact Hessian is cheap."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .registry import ShapeCheckedModel, register_model


class MLP(ShapeCheckedModel):
    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int],
                 activation: str = "relu", batchnorm: bool = False):
        super().__init__(tuple(input_shape))
        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[activation]
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(self.input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(act())
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.net(x)


@register_model
def mlp(input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, hidden: Sequence[int] = (64,),
        activation: str = "relu", batchnorm: bool = False) -> MLP:
    """MLP with ``hidden`` layer widths (Flatten first, so any input shape works)."""
    return MLP(input_shape, num_classes, list(hidden), activation, batchnorm)
