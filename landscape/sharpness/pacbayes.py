"""PAC-Bayes flatness: the largest noise scale the weights tolerate (Jiang et al. 2019).

``sigma`` is the largest value with ``E_u[err(w + u)] - err(w) <= target`` (target 0.1), found by
bisection; flatness is ``1 / sigma^2``. Plain: ``u ~ N(0, sigma^2 I)``; magnitude-aware:
``u_i ~ N(0, sigma^2 w_i^2 + eps^2)``, invariant to how the weights are scaled. The expectation
is a Monte Carlo mean over ``n_probes`` draws. The *same* standard-normal draws ``z`` are reused
at every ``sigma`` (``u = std(sigma) * z``, the standard deviation, not the variance), so the
estimated deviation is a smooth, nearly monotone function of ``sigma`` and bisection on it is
well posed rather than chasing sampling noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import DataSpec
from ..errors import LandscapeError
from ..renamed import renamed_keywords
from ..risk import ParamSpec
from ..rng import generator
from ..losses import LossSpec
from ..risk import EmpiricalRisk
from .objective import objective, sharpness_settings
from .results import SharpnessResult

METRICS = ("error", "loss")


@dataclass(repr=False)
class PacBayesResult(SharpnessResult):
    """``value`` is sigma (the bracket's midpoint); ``flatness`` is ``1 / sigma^2``; ``deviation`` the
    estimated ``E err(w+u) - err(w)`` at the bracket's lower end, which meets the target."""

    flatness: float = math.nan
    deviation: float = math.nan
    bracket: list = field(default_factory=list)
    n_bisect: int = 0

    @property
    def sigma(self) -> float:
        return float(self.value)


@renamed_keywords(n_samples="n_probes")
def pac_bayes_sigma(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *,
                    target: float = 0.1, metric: str = "error",
                    magnitude_aware: bool = False, eps: float = 1e-3, n_probes: int = 10, tol: float = 1e-2,
                    sigma_init: float | None = None, max_bisect: int = 60, loss: LossSpec = "crossentropy",
                    batch_size: int | None = None, params: ParamSpec = None, seed: int = 0,
                    device: str | torch.device | None = None, progress: bool = False, data_on: str = "auto") -> PacBayesResult:
    """PAC-Bayes sigma of ``model`` at its current weights (restored afterwards).

    Bisection stops when the bracket ``[lo, hi]`` is narrower than ``tol * hi`` (relative);
    ``metric="loss"`` bounds the loss deviation instead of the 0-1 error's. ``sigma_init``
    (default 1 plain, 0.1 magnitude-aware) is where the bracket search starts; it doubles or
    halves until the target is crossed.
    """
    if metric not in METRICS:
        raise LandscapeError(f"metric must be one of {METRICS}, got {metric!r}")
    if not target > 0:
        raise LandscapeError(f"target must be positive, got {target}")
    if not 0 < tol < 1:
        raise LandscapeError(f"tol must be in (0, 1), got {tol}")
    if n_probes < 1:
        raise LandscapeError(f"n_probes must be at least 1, got {n_probes}")
    if magnitude_aware and eps < 0:
        raise LandscapeError(f"eps must be >= 0, got {eps}")
    obj = objective(risk, data, loss, batch_size, params, device, data_on)
    evals_before = obj.n_evals
    measure = obj.error if metric == "error" else obj.loss
    w = obj.origin_flat().to(obj.device)
    gen = generator(seed, "pac-bayes")
    draws = [torch.randn(len(w), generator=gen, dtype=torch.float64).to(obj.device) for _ in range(n_probes)]
    evaluated: dict[float, float] = {}

    def deviation(sigma: float) -> float:
        if sigma not in evaluated:
            if magnitude_aware:
                std = torch.sqrt(sigma ** 2 * w ** 2 + eps ** 2)
            else:
                std = torch.full_like(w, sigma)
            total = 0.0
            for z in draws:
                obj.offset(std * z)
                total += measure()
            evaluated[sigma] = total / n_probes - base
        return evaluated[sigma]

    from tqdm.auto import tqdm
    bar = tqdm(total=None, desc="PAC-Bayes sigma", unit="sigma", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        with obj:
            base = measure()
            if metric == "error" and base + target >= 1.0:
                raise LandscapeError(f"the error is already {base:.3f}: no noise level can raise it by {target}; "
                                     "use a smaller target or metric='loss'")
            sigma = float(sigma_init) if sigma_init is not None else (0.1 if magnitude_aware else 1.0)
            if not sigma > 0:
                raise LandscapeError(f"sigma_init must be positive, got {sigma_init}")
            # Bracket the crossing by doubling or halving: lo meets the target, hi exceeds it.
            if deviation(sigma) <= target:
                lo = sigma
                while True:
                    sigma *= 2
                    bar.update(1)
                    if sigma > 1e30:
                        raise LandscapeError(f"even sigma = {sigma:.1e} moves the {metric} by at most {target}: "
                                             "the measure does not react to the weights")
                    if deviation(sigma) > target:
                        hi = sigma
                        break
                    lo = sigma
            else:
                hi = sigma
                while True:
                    sigma /= 2
                    bar.update(1)
                    if sigma < 1e-30:
                        raise LandscapeError(f"the {metric} moves by more than {target} at every noise level down to "
                                             f"sigma = {sigma:.1e}; check the model and data")
                    if deviation(sigma) <= target:
                        lo = sigma
                        break
                    hi = sigma
            n_bisect = 0
            while hi - lo > tol * hi and n_bisect < max_bisect:
                mid = 0.5 * (lo + hi)
                if deviation(mid) <= target:
                    lo = mid
                else:
                    hi = mid
                n_bisect += 1
                bar.update(1)
    finally:
        bar.close()
    sigma = 0.5 * (lo + hi)
    settings = {"measure": "pacbayes", "target": target, "metric": metric, "magnitude_aware": bool(magnitude_aware),
                "eps": eps if magnitude_aware else None, "n_probes": n_probes, "tol": tol, "seed": seed,
                "noise": "N(0, sigma^2 w^2 + eps^2)" if magnitude_aware else "N(0, sigma^2 I)", **sharpness_settings(obj)}
    return PacBayesResult(value=sigma, base_loss=base, settings=settings, n_evals=obj.n_evals - evals_before,
                          flatness=1.0 / sigma ** 2, deviation=evaluated[lo], bracket=[lo, hi], n_bisect=n_bisect)
