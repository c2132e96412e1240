"""Models whose sharpness is known in closed form: the references for the sharpness tests.

`Quadratic`: each sample's loss is ``1/2 (w - c)^T H_i (w - c)``, with ``H_i = diag(x_i)`` (the
sample's input is its curvature) or one dense ``H`` for every sample; the model's output *is*
the per-sample loss and `mean_output` the loss callable. `SignClassifier`: sample ``i`` is
classified correctly iff ``w[i] > 0``, so under Gaussian noise its error probability is a
normal CDF and PAC-Bayes sigma has a closed form.
"""
from __future__ import annotations

import torch
from torch import nn


class Quadratic(nn.Module):
    def __init__(self, c: torch.Tensor, H: torch.Tensor | None = None):
        super().__init__()
        self.w = nn.Parameter(c.clone().double())
        self.register_buffer("c", c.clone().double())
        self.register_buffer("H", H.double() if H is not None else torch.zeros(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.w - self.c
        if self.H.numel():
            return (0.5 * d @ self.H @ d).expand(len(x), 1)
        return 0.5 * (x * d ** 2).sum(1, keepdim=True)


def mean_output(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs.mean()


class SignClassifier(nn.Module):
    """Two logits ``(0, w[i])`` for input index ``i``: correct (class 1) iff ``w[i] > 0``."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone().double())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        z = self.w[idx.long()]
        return torch.stack([torch.zeros_like(z), z], dim=1)


def sign_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n), torch.ones(n, dtype=torch.long)
