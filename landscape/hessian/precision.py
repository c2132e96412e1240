"""How accurate float32 Hessian-vector products are at this checkpoint, measured against float64.

Lanczos' error estimates assume exact products. At a minimum with near-zero training loss the
softmax saturates: the curvature lives in ``p (1 - p)`` with ``1 - p`` around the loss, and a
float32 loss head keeps ``p`` only to about 6e-8 absolutely, so products lose relative accuracy
roughly as ``6e-8 / loss``: on the digits convnet trained at batch 16 (train loss 2e-4) they were
4.6e-5 off along the top eigenvector, against 6e-7 at batch 128. Products therefore take the loss
on float64 outputs (`losses.wide_head`), which brings that case to 5.6e-7; what remains is the
network's own float32 rounding, and outputs too large to widen (a large vocabulary's logits) keep
a float32 head. One product in each precision on a slice of the data tells which case a run is in.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..batches import concat, slice_batch
from ..risk import EmpiricalRisk, as_risk
from .hvp import HessianOperator

CHECK_SAMPLES = 512  # the effect is per sample (saturated softmax), so a slice shows it


def rounding_error(op: EmpiricalRisk | HessianOperator, vector: torch.Tensor, samples: int = CHECK_SAMPLES) -> float:
    """``||H32 v - H64 v|| / ||H64 v||`` on the first ``samples`` samples of ``op``'s data.

    ``op`` is the risk in use (its model, loss, parameter subset and weight decay); the
    reference is the same risk built on a float64 copy of the model. 0.0 when ``op`` already
    runs in float64.
    """
    return rounding(op, vector, samples)[0]


def rounding(op: EmpiricalRisk | HessianOperator, vector: torch.Tensor,
             samples: int = CHECK_SAMPLES) -> tuple[float, float]:
    """(relative, absolute) error of ``op``'s product with unit ``vector`` (see `rounding_error`).

    The absolute one, ``||(H32 - H64) v||``, bounds how far the rounding moves the eigenvalue whose
    eigenvector ``v`` is (first-order perturbation: ``|v^T E v| <= ||E v||``).
    """
    risk = as_risk(op)
    if risk.param_dtype == torch.float64:
        return 0.0, 0.0
    # only the leading batches: the check needs a slice, not a copy of the data
    inputs, target = concat(risk.batches.head(samples))
    head = slice_batch(inputs, target, 0, samples)
    data = {**head.inputs, _TARGET: head.target} if isinstance(head.inputs, dict) else (*head.inputs, head.target)
    settings = dict(loss=risk.loss_spec, batch_size=risk.batch_size, params=[n for n, _ in risk.named_params],
                    weight_decay=risk.weight_decay, device=risk.device, data_on="device",
                    target_key=_TARGET if isinstance(head.inputs, dict) else None)
    low = EmpiricalRisk(risk.model, data, **settings)
    high = EmpiricalRisk(_float64_copy(risk.model), data, **settings)
    exact = high.hvp(vector)
    off = float(torch.linalg.vector_norm(low.hvp(vector) - exact))
    return off / float(torch.linalg.vector_norm(exact)), off


_TARGET = "__target__"


def _float64_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model).double()
    twin.train(model.training)
    return twin
