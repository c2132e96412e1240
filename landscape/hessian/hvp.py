"""The Hessian of a model's dataset loss as a matrix-free linear operator.

Every spectral method here (Lanczos, power iteration, Hutchinson, SLQ) sees the Hessian only
through products ``H v``. `HessianOperator` computes them over the *whole* dataset: the loss of
each batch is weighted by ``n_batch / n`` so a smaller last batch counts for what it holds, the
model is in eval mode (BN running statistics, not batch statistics, so the Hessian does not
depend on how the data is batched), and every product is a double ``torch.autograd.grad`` whose
graph is freed per batch (no ``.backward(create_graph=True)``, which leaks through ``.grad``).
Attention runs on its twice-differentiable math kernel during products (`landscape.attention`).

An optional ``weight_decay`` adds ``wd/2 ||w||^2`` over the chosen parameters, i.e. ``wd * I``
to the Hessian; an optional parameter subset restricts the operator to one layer or block.
The operator is also a `scipy.sparse.linalg.LinearOperator`, so scipy's solvers run on it as is.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import nn

from ..attention import double_backward_attention
from ..data import DataSpec, as_tensors, iter_batches
from ..errors import LandscapeError
from ..evaluation import eval_mode, resolve_device
from ..losses import LossSpec, get_loss, loss_name

DEFAULT_HVP_BATCH_SIZE = 512
ParamSpec = Union[None, str, Sequence[str]]


def select_parameters(model: nn.Module, params: ParamSpec = None) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters an operator (or a sharpness measure) acts on, in model order.

    ``params`` is None (every trainable parameter), a name or module prefix (``"classifier"``,
    ``"features.3"``: one layer or block), or a list of such names/prefixes.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise LandscapeError("the model has no trainable parameters (all have requires_grad=False)")
    if params is None:
        return named
    wanted = [params] if isinstance(params, str) else list(params)
    if not wanted:
        raise LandscapeError("params is an empty list; pass None for all parameters or name a layer")

    def chosen(name: str) -> bool:
        return any(name == w or name.startswith(w.rstrip(".") + ".") for w in wanted)

    picked = [(n, p) for n, p in named if chosen(n)]
    if not picked:
        blocks = sorted({n.rsplit(".", 1)[0] for n, _ in named if "." in n})
        raise LandscapeError(f"no trainable parameter matches {wanted}; use a parameter name or a module "
                             f"prefix such as {', '.join(blocks[:6])}")
    return picked


def describe_parameters(params: ParamSpec) -> str:
    if params is None:
        return "all"
    return params if isinstance(params, str) else ",".join(params)


def prepare_batches(data: DataSpec, batch_size: int | None, device: torch.device,
                    dtype: torch.dtype) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], int]:
    """Slice the data into batches once, on the device; float inputs take the model's dtype.

    Casting inputs to the parameters' dtype lets a float64 copy of a model (exact checks) run on
    the float32 datasets without the caller converting them.
    """
    x, y = as_tensors(data)
    if x.is_floating_point() and x.dtype != dtype:
        x = x.to(dtype)
    if y.is_floating_point() and y.dtype != dtype:
        y = y.to(dtype)
    bs = batch_size or DEFAULT_HVP_BATCH_SIZE
    return [(xb.to(device), yb.to(device)) for xb, yb in iter_batches(x, y, bs)], len(x)


class HessianOperator(LinearOperator):
    """``H = d^2/dw^2 [ mean-over-dataset loss + wd/2 ||w||^2 ]`` at the model's current weights.

    Vectors are flat over the selected parameters (in ``named_parameters`` order). `mv` takes
    and returns torch vectors (float64, on the model's device); the scipy interface
    (``matvec``/``@`` on numpy arrays) goes through it. ``n_hvps`` counts products performed.
    The weights are read live at each product, so the operator follows in-place weight changes.
    """

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, params: ParamSpec = None, weight_decay: float = 0.0,
                 device: str | torch.device | None = None):
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise LandscapeError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        self.model = model
        self.device = resolve_device(device, model)
        self.named_params = select_parameters(model, params)
        self.params = [p for _, p in self.named_params]
        self.param_dtype = self.params[0].dtype
        self.sizes = [p.numel() for p in self.params]
        self.num_params = sum(self.sizes)
        self.loss_fn = get_loss(loss)
        self.batches, self.num_samples = prepare_batches(data, batch_size, self.device, self.param_dtype)
        self.weight_decay = float(weight_decay)
        self.n_hvps = 0
        self.settings = {"loss": loss_name(loss), "batch_size": batch_size or DEFAULT_HVP_BATCH_SIZE,
                         "params": describe_parameters(params), "weight_decay": self.weight_decay,
                         "weight_decay_included": self.weight_decay != 0.0, "num_params": self.num_params,
                         "num_samples": self.num_samples, "dtype": str(self.param_dtype).removeprefix("torch.")}
        super().__init__(dtype=np.float64, shape=(self.num_params, self.num_params))

    # ---------------------------------------------------------------- flat <-> per-parameter
    def split(self, v: torch.Tensor) -> list[torch.Tensor]:
        """A flat vector as per-parameter tensors, each in its parameter's dtype."""
        chunks = torch.split(v.to(self.device), self.sizes)
        return [c.view_as(p).to(p.dtype) for c, p in zip(chunks, self.params)]

    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])

    def weights(self) -> torch.Tensor:
        """The selected parameters' current values as one flat float64 vector."""
        return self.flatten([p.detach() for p in self.params])

    # ---------------------------------------------------------------- products
    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` over the whole dataset (float64 flat vector on the device)."""
        if v.shape != (self.num_params,):
            raise LandscapeError(f"vector of shape {tuple(v.shape)} for an operator over {self.num_params} parameters")
        return self.mm(v.unsqueeze(0))[0]

    def mm(self, V: torch.Tensor) -> torch.Tensor:
        """Rows ``H v_i`` for the ``k`` rows of ``V`` (``k x P``, float64 result on the device).

        Per batch, one forward and first backward serve all ``k`` vectors: the second backward
        runs once per vector on the retained graph (the last one frees it), so a block costs
        ``F + k S`` instead of ``k (F + S)``. Not ``is_grads_batched``: its legacy vmap has no
        batching rule for the conv/BN double backward and falls back to a slower loop (measured
        slower than this loop on CPU, even for an MLP). Counts ``k`` products in ``n_hvps``.
        """
        if V.ndim != 2 or V.shape[1] != self.num_params:
            raise LandscapeError(f"block of shape {tuple(V.shape)} for an operator over {self.num_params} parameters")
        k = V.shape[0]
        V = V.to(device=self.device, dtype=torch.float64)
        bounds = np.cumsum([0] + self.sizes).tolist()
        vectors = [self.split(v) for v in V]  # once, not per batch: each is a cast to the parameters' dtype
        out = torch.zeros((k, self.num_params), dtype=torch.float64, device=self.device)
        with eval_mode(self.model), torch.enable_grad(), double_backward_attention():
            for xb, yb in self.batches:
                loss = self.loss_fn(self.model(xb), yb) * (len(xb) / self.num_samples)
                grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
                # Unused parameters (a head the loss never reaches) have zero gradient and curvature.
                used = [j for j, g in enumerate(grads) if g is not None and g.requires_grad]
                if not used:
                    continue
                for i, vs in enumerate(vectors):
                    hv = torch.autograd.grad([grads[j] for j in used], self.params,
                                             grad_outputs=[vs[j] for j in used], allow_unused=True,
                                             retain_graph=i < k - 1)
                    for j, h in enumerate(hv):
                        if h is not None:
                            out[i, bounds[j]:bounds[j + 1]] += h.detach().reshape(-1).to(torch.float64)
        if self.weight_decay:
            out += self.weight_decay * V
        self.n_hvps += k
        return out

    def loss_and_gradient(self) -> tuple[float, torch.Tensor]:
        """Dataset loss (with the weight-decay term) and its flat gradient at the current weights."""
        total = 0.0
        acc = [torch.zeros_like(p, dtype=torch.float64) for p in self.params]
        with eval_mode(self.model), torch.enable_grad():
            for xb, yb in self.batches:
                loss = self.loss_fn(self.model(xb), yb) * (len(xb) / self.num_samples)
                grads = torch.autograd.grad(loss, self.params, allow_unused=True)
                total += float(loss.detach())
                for a, g in zip(acc, grads):
                    if g is not None:
                        a += g.to(torch.float64)
        grad = self.flatten(acc)
        if self.weight_decay:
            w = self.weights()
            total += 0.5 * self.weight_decay * float(w @ w)
            grad += self.weight_decay * w
        return total, grad

    # ---------------------------------------------------------------- scipy LinearOperator
    def _matvec(self, x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
        return self.mv(v.to(self.device)).cpu().numpy()

    def _rmatvec(self, x: np.ndarray) -> np.ndarray:
        return self._matvec(x)  # symmetric

    def _adjoint(self) -> "HessianOperator":
        return self

    def __repr__(self) -> str:
        return (f"HessianOperator(num_params={self.num_params}, num_samples={self.num_samples}, "
                f"params={self.settings['params']!r}, weight_decay={self.weight_decay:g}, n_hvps={self.n_hvps})")


def dense_hessian(op: HessianOperator) -> torch.Tensor:
    """The full ``P x P`` matrix by ``P`` products: for checks on tiny models only."""
    if op.num_params > 5000:
        raise LandscapeError(f"a dense Hessian over {op.num_params} parameters is too large; use the iterative methods")
    eye = torch.eye(op.num_params, dtype=torch.float64, device=op.device)
    return torch.stack([op.mv(e) for e in eye], dim=1)
