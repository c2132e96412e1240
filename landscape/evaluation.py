"""Loss and accuracy of one weight vector over a dataset.

Sample-weighted means (the last, smaller batch counts for what it holds), eval mode for every
measurement (BN statistics must not move), and the model handed back in the mode it came in.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .data import DataSpec, as_tensors, iter_batches
from .losses import LossSpec, correct_count, get_loss

DEFAULT_BATCH_SIZE = 256


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, then restore each one's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in flags:
            m.training = was_training


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if model is not None:
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


class Evaluator:
    """Evaluates the model's *current* weights on fixed data that lives on the device.

    Built once per surface: inputs are moved and sliced into batches up front, so a grid point
    costs forward passes and nothing else.
    """

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, device: str | torch.device | None = None):
        self.model = model
        self.device = resolve_device(device, model)
        self.loss_fn = get_loss(loss)
        x, y = as_tensors(data)
        self.n = len(x)
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.batches = [(xb.to(self.device), yb.to(self.device)) for xb, yb in iter_batches(x, y, self.batch_size)]

    @torch.inference_mode()
    def __call__(self) -> tuple[float, float]:
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        total_correct = torch.zeros((), dtype=torch.float64, device=self.device)
        with eval_mode(self.model):
            for xb, yb in self.batches:
                out = self.model(xb)
                total_loss += self.loss_fn(out, yb).double() * len(xb)
                total_correct += correct_count(out, yb).double()
        return float(total_loss) / self.n, float(total_correct) / self.n


def evaluate(model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy", batch_size: int | None = None,
             device: str | torch.device | None = None) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for non-class targets) of ``model`` over ``data``."""
    return Evaluator(model, data, loss, batch_size, device)()
