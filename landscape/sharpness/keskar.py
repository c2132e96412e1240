"""Keskar et al.'s epsilon-sharpness (2016, metric 2.1), maximised with scipy's L-BFGS-B.

``phi = 100 * (max_{y in C} f(x + A y) - f(x)) / (1 + f(x))`` over the box
``C = {|y_i| <= eps (|(A^+ x)_i| + 1)}``: ``A = I`` explores the full parameter space, a random
``n x p`` matrix (Gaussian entries, p = 100 in the paper) a random subspace. The box scales with
the weights, so the measure is not fooled by a layer's scale. The maximiser is L-BFGS-B with
the box as bounds, started at ``y = 0`` and stopped after ``max_iter`` iterations (Keskar et al.
use 10): sharpness is the loss of the best point found, reported with the iterations used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import nn

from ..data import DataSpec
from ..errors import LandscapeError
from ..risk import ParamSpec
from ..rng import generator
from ..losses import LossSpec
from ..risk import EmpiricalRisk
from .objective import objective, sharpness_settings
from .results import SharpnessResult


@dataclass(repr=False)
class KeskarResult(SharpnessResult):
    """``value`` is phi (percent); ``max_loss`` the loss at the maximiser, ``base_loss`` f(x)."""

    max_loss: float = math.nan
    n_iter: int = 0


def random_subspace(n: int, p: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n x p`` matrix with standard Gaussian entries (drawn on the CPU, reproducible by seed)."""
    g = generator(seed, "keskar-subspace")
    return torch.randn(n, p, generator=g, dtype=dtype)


def keskar(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *,
           eps: float = 1e-3, subspace_dim: int | None = None,
           max_iter: int = 10, loss: LossSpec = "crossentropy", batch_size: int | None = None,
           params: ParamSpec = None, subspace: torch.Tensor | None = None, seed: int = 0,
           device: str | torch.device | None = None, progress: bool = False, data_on: str = "auto") -> KeskarResult:
    """epsilon-sharpness of ``model`` at its current weights (restored afterwards).

    ``subspace_dim=p`` draws a random ``n x p`` matrix ``A`` with ``seed``; ``subspace`` passes
    your own ``A`` (``n x p``, ``n`` = number of selected parameters). Neither: ``A = I``.
    """
    if not eps > 0:
        raise LandscapeError(f"eps must be positive, got {eps}")
    if max_iter < 1:
        raise LandscapeError(f"max_iter must be at least 1, got {max_iter}")
    obj = objective(risk, data, loss, batch_size, params, device, data_on)
    n = obj.num_params
    x = obj.origin_flat()
    if subspace is not None:
        A = subspace.to(device=obj.device, dtype=torch.float64)
        if A.dim() != 2 or A.shape[0] != n:
            raise LandscapeError(f"subspace must be an n x p matrix with n = {n} parameters, got shape {tuple(A.shape)}")
        mode = f"given {A.shape[1]}-dim"
    elif subspace_dim is not None:
        if not 1 <= subspace_dim <= n:
            raise LandscapeError(f"subspace_dim must be between 1 and the number of parameters ({n}), got {subspace_dim}")
        A = random_subspace(n, subspace_dim, seed).to(obj.device)
        mode = f"random {subspace_dim}-dim"
    else:
        A = None
        mode = "full"

    if A is None:
        center = x
    else:
        center = torch.linalg.lstsq(A, x.unsqueeze(1)).solution.squeeze(1)  # A^+ x
    bound = (eps * (center.abs() + 1)).cpu().numpy()
    from tqdm.auto import tqdm
    bar = tqdm(total=max_iter, desc=f"keskar ({mode})", unit="it", disable=not progress, leave=False, dynamic_ncols=True)
    best = {"loss": -math.inf}

    def negative_loss(y: np.ndarray) -> tuple[float, np.ndarray]:
        yt = torch.from_numpy(np.asarray(y, dtype=np.float64)).to(obj.device)
        obj.offset(yt if A is None else A @ yt)
        f, g = obj.loss_and_grad()
        if f > best["loss"]:
            best["loss"] = f
        if not math.isfinite(f):
            raise LandscapeError("the loss became non-finite inside the box; use a smaller eps")
        grad = g if A is None else A.T @ g
        return -f, -grad.cpu().numpy()

    try:
        with obj:
            f0 = obj.loss()
            res = minimize(negative_loss, np.zeros(len(bound)), jac=True, method="L-BFGS-B",
                           bounds=Bounds(-bound, bound), callback=lambda _y: bar.update(1),
                           options={"maxiter": int(max_iter)})
    finally:
        bar.close()
    fmax = max(best["loss"], f0)
    settings = {"measure": "keskar", "eps": eps, "subspace": mode, "subspace_dim": None if A is None else int(A.shape[1]),
                "max_iter": max_iter, "seed": seed, "optimizer": "L-BFGS-B", "start": "zero",
                "optimizer_message": str(res.message), **sharpness_settings(obj)}
    return KeskarResult(value=100.0 * (fmax - f0) / (1.0 + f0), base_loss=f0, settings=settings,
                        n_evals=int(res.nfev), max_loss=fmax, n_iter=int(res.nit))
