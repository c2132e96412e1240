"""Worst-case and average-case sharpness, adaptive or not (Kwon et al. 2021; Andriushchenko et al. 2023).

Worst case: ``max_{||delta / c||_p <= rho} L(w + delta) - L(w)``; average case:
``E_{delta_i ~ N(0, rho^2 c_i^2)} L(w + delta) - L(w)``. ``c = |w|`` (adaptive: invariant to
rescaling a layer, the reparametrisation that fools plain sharpness) or ``c = 1``. The maximum is
found by projected normalized gradient ascent in ``u = delta / c`` (``p = 2``: steps along the
normalized gradient, projection onto the ball; ``p = inf``: sign steps, clipping to the box), from
a random start so a model exactly at a critical point still moves; the best point seen counts.
m-sharpness computes the measure on groups of ``m`` consecutive samples (its own perturbation
for each group) and averages, weighting each group by its size; ``m=None`` uses the whole data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import DataSpec
from ..errors import LandscapeError
from ..renamed import renamed_keywords
from ..risk import ParamSpec
from ..rng import generator
from ..losses import LossSpec
from ..risk import EmpiricalRisk
from .objective import Batches, objective, sharpness_settings
from .results import SharpnessResult

KINDS = ("worst", "average")


@dataclass(repr=False)
class AdaptiveResult(SharpnessResult):
    """``stderr``: Monte Carlo standard error (average case) or spread over the m-groups (worst case
    with ``m``); NaN where it does not apply."""

    stderr: float = math.nan
    n_groups: int = 1


def norm_p(p: float | int | str) -> str:
    text = str(p).lower()
    if text in ("2", "2.0", "l2"):
        return "2"
    if text in ("inf", "infinity", "linf"):
        return "inf"
    raise LandscapeError(f"p must be 2 or 'inf', got {p!r}")


def _ascend(obj: EmpiricalRisk, group: Batches, c: torch.Tensor, rho: float, p: str, n_steps: int,
            step_size: float, gen: torch.Generator) -> float:
    """Largest ``L_group(w + c*u) - L_group(w)`` found over ``||u||_p <= rho``."""
    dev = c.device
    obj.restore()
    base = obj.loss(group)
    if p == "2":
        u = torch.randn(len(c), generator=gen, dtype=torch.float64).to(dev)
        u *= rho / torch.linalg.vector_norm(u)
    else:
        u = ((torch.rand(len(c), generator=gen, dtype=torch.float64) * 2 - 1) * rho).to(dev)
    best = -math.inf
    for step in range(n_steps + 1):
        obj.offset(c * u)
        if step == n_steps:
            best = max(best, obj.loss(group))
            break
        f, g = obj.loss_and_grad(group)
        best = max(best, f)
        gu = c * g
        if p == "2":
            norm = torch.linalg.vector_norm(gu)
            if not norm > 0:
                break
            u = u + step_size * gu / norm
            radius = torch.linalg.vector_norm(u)
            if radius > rho:
                u *= rho / radius
        else:
            u = (u + step_size * torch.sign(gu)).clamp_(-rho, rho)
    obj.restore()
    return best - base


@renamed_keywords(n_samples="n_probes")
def adaptive(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *,
             rho: float = 0.05, p: float | int | str = 2, kind: str = "worst",
             adaptive: bool = True, m: int | None = None, n_steps: int = 20, step_size: float | None = None,
             n_probes: int = 20, loss: LossSpec = "crossentropy", batch_size: int | None = None,
             params: ParamSpec = None, seed: int = 0, device: str | torch.device | None = None,
             progress: bool = False, data_on: str = "auto") -> AdaptiveResult:
    """(Adaptive) worst-case or average-case sharpness at the model's current weights.

    ``kind="worst"``: ``n_steps`` ascent steps of size ``step_size`` (default ``rho``) in
    ``u = delta / c``. ``kind="average"``: ``n_probes`` Gaussian draws ``delta ~ N(0, rho^2 c^2)``
    (independent per m-group), reported with their standard error. Weights are restored after.
    """
    p = norm_p(p)
    if kind not in KINDS:
        raise LandscapeError(f"kind must be one of {KINDS}, got {kind!r}")
    if not rho > 0:
        raise LandscapeError(f"rho must be positive, got {rho}")
    if n_steps < 1 or n_probes < 1:
        raise LandscapeError(f"n_steps and n_probes must be at least 1, got {n_steps} and {n_probes}")
    step = rho if step_size is None else float(step_size)
    if not step > 0:
        raise LandscapeError(f"step_size must be positive, got {step_size}")
    obj = objective(risk, data, loss, batch_size, params, device, data_on)
    evals_before = obj.n_evals
    w = obj.origin_flat().to(obj.device)
    c = w.abs() if adaptive else torch.ones_like(w)
    groups = obj.batch_groups(m)
    sizes = np.array([obj.weight_of(g) for g in groups], dtype=np.float64)
    weights = sizes / sizes.sum()
    gen = generator(seed, "adaptive-sharpness")
    from tqdm.auto import tqdm

    with obj:
        base = obj.loss()
        if kind == "worst":
            bar = tqdm(groups, desc=f"worst-case sharpness (p={p})", unit="group", disable=not progress,
                       leave=False, dynamic_ncols=True)
            per_group = np.array([_ascend(obj, g, c, rho, p, n_steps, step, gen) for g in bar])
            value = float(weights @ per_group)
            stderr = float(per_group.std(ddof=1) / np.sqrt(len(groups))) if len(groups) > 1 else math.nan
        else:
            bases = np.array([obj.loss(g) for g in groups])
            draws = np.empty(n_probes)
            bar = tqdm(range(n_probes), desc="average-case sharpness", unit="draw", disable=not progress,
                       leave=False, dynamic_ncols=True)
            for s in bar:
                diffs = np.empty(len(groups))
                for i, g in enumerate(groups):
                    delta = rho * c * torch.randn(len(c), generator=gen, dtype=torch.float64).to(obj.device)
                    obj.offset(delta)
                    diffs[i] = obj.loss(g) - bases[i]
                draws[s] = float(weights @ diffs)
            value = float(draws.mean())
            stderr = float(draws.std(ddof=1) / np.sqrt(n_probes)) if n_probes > 1 else math.nan
    settings = {"measure": "adaptive" if kind == "worst" else "average", "kind": kind, "rho": rho, "p": p,
                "adaptive": bool(adaptive), "m": m, "n_steps": n_steps if kind == "worst" else None,
                "step_size": step if kind == "worst" else None,
                "n_probes": n_probes if kind == "average" else None, "seed": seed, **sharpness_settings(obj)}
    return AdaptiveResult(value=value, base_loss=base, settings=settings, n_evals=obj.n_evals - evals_before, stderr=stderr,
                          n_groups=len(groups))


def average(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *, rho: float = 0.05,
            **kwargs) -> AdaptiveResult:
    """Average-case sharpness: `adaptive` with ``kind="average"``."""
    return adaptive(risk, data, rho=rho, kind="average", **kwargs)
