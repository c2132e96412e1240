"""Loss functions by name, and the accuracy that goes with them.

Every loss is a callable ``(outputs, targets) -> mean loss`` so that sample-weighted means over
batches of different sizes are exact: ``sum(loss_b * n_b) / sum(n_b)``.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F

from .errors import LandscapeError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossSpec = Union[str, LossFn]


def float_targets(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets shaped like the outputs: one-hot when they are class indices (Li et al.'s MSE runs)."""
    if targets.dtype in (torch.int64, torch.int32) and outputs.dim() == 2:
        return F.one_hot(targets.long(), outputs.shape[1]).to(outputs.dtype)
    return targets.to(outputs.dtype).reshape(outputs.shape)


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs, float_targets(outputs, targets))


LOSSES: dict[str, LossFn] = {
    "crossentropy": F.cross_entropy,
    "mse": _mse,
}


def get_loss(loss: LossSpec) -> LossFn:
    """Resolve a loss name or pass a callable through."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise LandscapeError(
            f"unknown loss {loss!r}; use one of {sorted(LOSSES)} or pass a callable (outputs, targets) -> mean loss"
        ) from None


def loss_name(loss: LossSpec) -> str:
    """A name to record in files: the registry key or the callable's qualified name."""
    if isinstance(loss, str):
        return loss
    return getattr(loss, "__qualname__", type(loss).__name__)


def correct_count(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of correct argmax predictions; NaN when the targets are not class indices."""
    if outputs.dim() != 2 or targets.dtype not in (torch.int64, torch.int32, torch.uint8):
        return torch.tensor(float("nan"), device=outputs.device)
    return (outputs.argmax(dim=1) == targets).sum()
