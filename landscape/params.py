"""Named weight tensors of a model, and moving them along directions in place.

A direction is a plain ``dict[str, Tensor]`` keyed by parameter or buffer name (state_dict
keys), never matched by position. `WeightShifter` sets ``w0 + sum_k c_k d_k`` with fused
multi-tensor ops and restores ``w0`` bit for bit, so no model copy is made per point.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from .errors import LandscapeError

KINDS = ("weights", "states")
Direction = dict  # dict[str, torch.Tensor]


def weight_tensors(model: nn.Module, kind: str = "weights") -> dict[str, torch.Tensor]:
    """Live tensors (sharing storage with the model) by state_dict name.

    ``weights``: trainable parameters. ``states``: every floating-point state_dict entry, so BN
    running statistics move too (needed when interpolating between two trained networks).
    """
    if kind == "weights":
        return {n: p.detach() for n, p in model.named_parameters()}
    if kind == "states":
        return {n: t.detach() for n, t in model.state_dict(keep_vars=True).items() if t.is_floating_point()}
    raise LandscapeError(f"unknown direction kind {kind!r}; use 'weights' or 'states'")


def flat_norm(tensors: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> float:
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in values)))


def dot(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    return float(sum((a[n].double() * b[n].double()).sum() for n in a))


class WeightShifter:
    """Set a model's weights to ``origin + sum_k coeffs[k] * directions[k]`` and restore them."""

    def __init__(self, model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]], kind: str = "weights"):
        live = weight_tensors(model, kind)
        names = list(directions[0]) if directions else []
        for k, d in enumerate(directions):
            if list(d) != names:
                raise LandscapeError(f"direction {k} names different tensors than direction 0")
        missing = [n for n in names if n not in live]
        if missing:
            raise LandscapeError(f"the directions name tensors the model does not have: {missing[:3]}; "
                                 "were they made for another model or another --kind?")
        for n in names:
            if tuple(directions[0][n].shape) != tuple(live[n].shape):
                raise LandscapeError(f"direction tensor {n!r} has shape {tuple(directions[0][n].shape)} but the "
                                     f"model's has {tuple(live[n].shape)}")
        self.names = names
        self.live = [live[n] for n in names]
        self.origin = [t.clone() for t in self.live]
        self.dirs = [[d[n].to(device=t.device, dtype=t.dtype) for n, t in zip(names, self.live)]
                     for d in directions]
        # BN running variances extrapolated past a checkpoint (alpha > 1 between two models) can go
        # negative, which no network can hold: clamp them at zero (BN adds its eps on top).
        # `n_negative` counts the entries clamped at the last `set`.
        self.variances = [t for n, t in zip(names, self.live) if n.endswith("running_var")]
        self.n_negative = 0

    @torch.no_grad()
    def set(self, coeffs: Sequence[float]) -> None:
        if len(coeffs) != len(self.dirs):
            raise LandscapeError(f"coeffs has {len(coeffs)} entries for {len(self.dirs)} directions")
        torch._foreach_copy_(self.live, self.origin)
        for c, d in zip(coeffs, self.dirs):
            if c != 0.0:
                torch._foreach_add_(self.live, d, alpha=float(c))
        if self.variances:
            self.n_negative = int(sum(int((v < 0).sum()) for v in self.variances))
            torch._foreach_clamp_min_(self.variances, 0.0)

    @torch.no_grad()
    def restore(self) -> None:
        torch._foreach_copy_(self.live, self.origin)

    def __enter__(self) -> "WeightShifter":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
