"""The sharpness measures' view of the empirical risk: ``w -> L(w)`` moved around the weights.

Every sharpness measure evaluates ``L(w + delta)`` for many ``delta``: `EmpiricalRisk` holds the
chosen parameters and the batches, writes offsets into the live parameters (`EmpiricalRisk.offset`)
and returns weighted losses, errors and gradients in eval mode; the original weights are put back
bit for bit when its ``with`` block ends (also on exceptions). `LossObjective` is the older name
with the older positional signature.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from ..batches import Batch
from ..losses import LossSpec
from ..risk import EmpiricalRisk, ParamSpec, as_risk

Batches = Iterable[Batch]


class LossObjective(EmpiricalRisk):
    """`EmpiricalRisk` as ``LossObjective(model, data, loss, batch_size, params, device)``."""

    def __init__(self, model: nn.Module, data: Any, loss: LossSpec = "crossentropy", batch_size: int | None = None,
                 params: ParamSpec = None, device: str | torch.device | None = None, **options: Any):
        super().__init__(model, data, loss=loss, batch_size=batch_size, params=params, device=device, **options)

    set_offset = EmpiricalRisk.offset


def objective(risk: Any, data: Any, loss: LossSpec, batch_size: int | None, params: ParamSpec,
              device: str | torch.device | None, data_on: str) -> EmpiricalRisk:
    """The risk a measure runs on: the one given, or one built from ``(model, data)``."""
    return as_risk(risk, data, loss=loss, batch_size=batch_size, params=params, device=device, data_on=data_on)


def sharpness_settings(risk: EmpiricalRisk) -> dict:
    """What of the risk a sharpness result records."""
    return {k: risk.settings[k] for k in ("loss", "params", "num_params", "num_samples")}
