"""The Hessian of a model's dataset loss as a scipy `LinearOperator` (a view on `EmpiricalRisk`).

Every spectral method here (Lanczos, power iteration, Hutchinson, SLQ) sees the Hessian only
through products ``H v``: `EmpiricalRisk.hvp` and its blocked form `EmpiricalRisk.hmm` compute
them over the *whole* dataset, each batch weighted by its counted targets, in eval mode (BN
running statistics, so the Hessian does not depend on how the data is batched), every product a
double ``torch.autograd.grad`` whose graph is freed per batch (no ``.backward(create_graph=True)``,
which leaks through ``.grad``), attention on its twice-differentiable math kernel
(`landscape.attention`). An optional ``weight_decay`` adds ``wd * I``; an optional parameter
subset restricts the operator to one layer or block. `HessianOperator` wraps a risk for scipy's
solvers (``matvec``/``@`` on numpy arrays) and keeps the older ``(model, data, ...)`` spelling.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from ..errors import LandscapeError
from ..losses import LossSpec
from ..risk import EmpiricalRisk, ParamSpec, as_risk, describe_parameters, select_parameters

DEFAULT_HVP_BATCH_SIZE = 512

__all__ = ["HessianOperator", "dense_hessian", "ParamSpec", "select_parameters", "describe_parameters",
           "DEFAULT_HVP_BATCH_SIZE"]


class HessianOperator(LinearOperator):
    """``H = d^2/dw^2 [ risk ]`` at the model's current weights, for scipy; attributes are the risk's.

    Vectors are flat over the selected parameters (in ``named_parameters`` order). `mv` takes
    and returns torch vectors (float64, on the model's device); ``n_hvps`` counts products
    performed. The weights are read live at each product, so the operator follows in-place
    weight changes.
    """

    def __init__(self, model: Any, data: Any = None, loss: LossSpec = "crossentropy", batch_size: int | None = None,
                 params: ParamSpec = None, weight_decay: float = 0.0, device: str | torch.device | None = None,
                 **options: Any):
        self.risk = as_risk(model, data, loss=loss, batch_size=batch_size, params=params, weight_decay=weight_decay,
                            device=device, **options)
        super().__init__(dtype=np.float64, shape=(self.risk.num_params, self.risk.num_params))

    def __getattr__(self, name: str) -> Any:
        if name == "risk":
            raise AttributeError(name)
        return getattr(self.risk, name)

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.risk.hvp(v)

    def mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.risk.hmm(V)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
        return self.risk.hvp(v.to(self.risk.device)).cpu().numpy()

    def _rmatvec(self, x: np.ndarray) -> np.ndarray:
        return self._matvec(x)  # symmetric

    def _adjoint(self) -> "HessianOperator":
        return self

    def __repr__(self) -> str:
        r = self.risk
        return (f"HessianOperator(num_params={r.num_params}, num_samples={r.num_samples}, "
                f"params={r.settings['params']!r}, weight_decay={r.weight_decay:g}, n_hvps={r.n_hvps})")


def dense_hessian(risk: EmpiricalRisk | HessianOperator) -> torch.Tensor:
    """The full ``P x P`` matrix by ``P`` products: for checks on tiny models only."""
    risk = as_risk(risk)
    if risk.num_params > 5000:
        raise LandscapeError(f"a dense Hessian over {risk.num_params} parameters is too large; use the iterative methods")
    eye = torch.eye(risk.num_params, dtype=torch.float64, device=risk.device)
    return torch.cat([risk.hmm(block) for block in torch.split(eye, 64)]).T  # symmetric up to rounding
