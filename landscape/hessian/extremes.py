"""The largest and smallest Hessian eigenvalue at each point of a surface (Li et al.'s convexity maps).

`EigenExtremes` is a callable ``f(model) -> {"max_eig": ..., "min_eig": ...}`` measured at the
model's *current* weights, so `landscape.compute_surface(..., extra=[f])` stores both as arrays in
the surface file while it shifts the weights from point to point. One Lanczos run gives both ends
of the spectrum (Ritz values converge at both extremes), where Li et al. ran ARPACK twice. The
data is sliced onto the device once, not per point. ``|min_eig / max_eig|`` near zero means
locally convex; `landscape.plot.convexity` computes and draws it from the stored arrays.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data import DataSpec
from ..losses import LossSpec
from ..risk import EmpiricalRisk, ParamSpec
from .lanczos import lanczos


class EigenExtremes:
    """Callable per-point measure: the extreme eigenvalues of the loss Hessian over ``data``."""

    names = ("max_eig", "min_eig")

    def __init__(self, data: DataSpec, loss: LossSpec = "crossentropy", batch_size: int | None = None,
                 params: ParamSpec = None, weight_decay: float = 0.0, tol: float = 1e-3, max_iter: int = 100,
                 seed: int = 0, device: str | torch.device | None = None):
        self.data, self.loss, self.batch_size = data, loss, batch_size
        self.params, self.weight_decay, self.device = params, weight_decay, device
        self.tol, self.max_iter, self.seed = tol, max_iter, seed
        self._op: EmpiricalRisk | None = None
        self._model: nn.Module | None = None
        self.n_hvps = 0
        self.n_unconverged = 0

    def operator(self, model: nn.Module) -> EmpiricalRisk:
        # Built once per model: the risk reads the weights live, so it follows the shifts.
        if self._op is None or self._model is not model:
            self._op = EmpiricalRisk(model, self.data, loss=self.loss, batch_size=self.batch_size, params=self.params,
                                     weight_decay=self.weight_decay, device=self.device)
            self._model = model
        return self._op

    def __call__(self, model: nn.Module) -> dict[str, float]:
        op = self.operator(model)
        before = op.n_hvps
        run = lanczos(op.hvp, op.num_params, k=1, which="both", tol=self.tol, max_iter=self.max_iter,
                      seed=self.seed, device=op.device)
        self.n_hvps += op.n_hvps - before
        self.n_unconverged += int(not run.converged)
        return {"max_eig": float(run.values[-1]), "min_eig": float(run.values[0])}

    @property
    def settings(self) -> dict:
        return {"measure": "hessian_extremes", "tol": self.tol, "max_iter": self.max_iter, "seed": self.seed,
                **(self._op.settings if self._op is not None else {})}


def eigen_extremes(data: DataSpec, loss: LossSpec = "crossentropy", batch_size: int | None = None,
                   params: ParamSpec = None, weight_decay: float = 0.0, tol: float = 1e-3, max_iter: int = 100,
                   seed: int = 0, device: str | torch.device | None = None) -> EigenExtremes:
    """A ``f(model) -> {"max_eig", "min_eig"}`` for ``compute_surface(..., extra=[f])``.

    ``tol`` is the relative accuracy asked of both ends; a point that does not reach it within
    ``max_iter`` products keeps its best Ritz values (``min_eig`` is then an upper bound on the
    true smallest eigenvalue, as Ritz values always lie inside the spectrum).
    """
    return EigenExtremes(data, loss, batch_size, params, weight_decay, tol, max_iter, seed, device)
