"""The dataset loss as a function of a flat weight vector, for the sharpness maximisers.

Every sharpness measure evaluates ``L(w + delta)`` for many ``delta``: this holds the chosen
parameters and the batches (on the device, sliced once), writes a flat vector into the live
parameters, and returns sample-weighted losses, errors and gradients in eval mode. The original
weights are kept and put back bit for bit by `restore` (also on exceptions, via ``with``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data import DataSpec
from ..errors import LandscapeError
from ..evaluation import eval_mode, resolve_device
from ..hessian.hvp import ParamSpec, describe_parameters, prepare_batches, select_parameters
from ..losses import LossSpec, correct_count, get_loss, loss_name

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


class LossObjective:
    """``w -> L(w)`` over the selected parameters; use as a context manager to restore them."""

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, params: ParamSpec = None,
                 device: str | torch.device | None = None):
        self.model = model
        self.device = resolve_device(device, model)
        self.named_params = select_parameters(model, params)
        self.params = [p for _, p in self.named_params]
        self.dtype = self.params[0].dtype
        self.sizes = [p.numel() for p in self.params]
        self.num_params = sum(self.sizes)
        self.loss_fn = get_loss(loss)
        self.batches, self.num_samples = prepare_batches(data, batch_size, self.device, self.dtype)
        self.origin = [p.detach().clone() for p in self.params]
        self.n_evals = 0
        self.settings = {"loss": loss_name(loss), "params": describe_parameters(params),
                         "num_params": self.num_params, "num_samples": self.num_samples}

    # ---------------------------------------------------------------- weights
    def origin_flat(self) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in self.origin]).to(torch.float64)

    @torch.no_grad()
    def set_flat(self, w: torch.Tensor) -> None:
        """Write a flat vector (any float dtype) into the live parameters."""
        for p, chunk in zip(self.params, torch.split(w.to(self.device), self.sizes)):
            p.copy_(chunk.view_as(p))

    @torch.no_grad()
    def set_offset(self, delta: torch.Tensor) -> None:
        """Parameters := origin + delta (delta flat, float64)."""
        for p, o, d in zip(self.params, self.origin, torch.split(delta.to(self.device), self.sizes)):
            p.copy_((o.to(torch.float64) + d.view_as(o)).to(p.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        for p, o in zip(self.params, self.origin):
            p.copy_(o)

    def __enter__(self) -> "LossObjective":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    # ---------------------------------------------------------------- evaluation
    def batch_groups(self, m: int | None) -> list[Batches]:
        """Groups of consecutive samples of size ``m`` (the last may be smaller) for m-sharpness;
        ``None`` is one group holding the whole dataset."""
        if m is None:
            return [self.batches]
        if m <= 0:
            raise LandscapeError(f"m must be a positive number of samples, got {m}")
        x = torch.cat([xb for xb, _ in self.batches])
        y = torch.cat([yb for _, yb in self.batches])
        return [[(x[i:i + m], y[i:i + m])] for i in range(0, len(x), m)]

    def loss(self, batches: Batches | None = None) -> float:
        """Sample-weighted mean loss at the current weights."""
        return self._evaluate(batches, error=False)

    def error(self, batches: Batches | None = None) -> float:
        """Fraction of misclassified samples at the current weights (class-index targets only)."""
        return self._evaluate(batches, error=True)

    @torch.inference_mode()
    def _evaluate(self, batches: Batches | None, error: bool) -> float:
        batches = self.batches if batches is None else batches
        total, n = 0.0, 0
        with eval_mode(self.model):
            for xb, yb in batches:
                out = self.model(xb)
                if error:
                    correct = correct_count(out, yb)
                    if torch.isnan(correct):
                        raise LandscapeError("the 0-1 error needs class-index targets and (N, classes) outputs; "
                                             "use metric='loss' for other models")
                    total += len(xb) - float(correct)
                else:
                    total += float(self.loss_fn(out, yb)) * len(xb)
                n += len(xb)
        self.n_evals += 1
        return total / n

    def loss_and_grad(self, batches: Batches | None = None) -> tuple[float, torch.Tensor]:
        """Mean loss and its flat float64 gradient w.r.t. the selected parameters."""
        batches = self.batches if batches is None else batches
        n = sum(len(xb) for xb, _ in batches)
        total = 0.0
        acc = [torch.zeros_like(p, dtype=torch.float64) for p in self.params]
        with eval_mode(self.model), torch.enable_grad():
            for xb, yb in batches:
                loss = self.loss_fn(self.model(xb), yb) * (len(xb) / n)
                grads = torch.autograd.grad(loss, self.params, allow_unused=True)
                total += float(loss.detach())
                for a, g in zip(acc, grads):
                    if g is not None:
                        a += g.to(torch.float64)
        self.n_evals += 1
        return total, torch.cat([a.reshape(-1) for a in acc])
