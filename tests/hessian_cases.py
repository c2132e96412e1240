"""Tiny models on fixed data with their exact dense Hessians: the references the Hessian tests
compare against. Everything is float64, so agreement is limited by the methods, not by rounding.

The exact Hessian comes from `torch.autograd.functional.hessian` on one full batch through
`torch.func.functional_call`: independent of the batching, eval-mode handling and HVP code under
test. Results are cached per session (several test files share them).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from landscape import build_model, get_dataset

N_SAMPLES = 96
HVP_BATCH = 40  # 40 + 40 + 16: the smaller last batch must be weighted by its size


@functools.lru_cache(maxsize=None)
def digits_subset(n: int = N_SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    d = get_dataset("digits", "train")
    return d.inputs[:n].double(), d.targets[:n]


def _settle(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int) -> nn.Module:
    """A few SGD steps in train mode: BN running statistics and weights away from their init,
    but not at a minimum, so the spectrum has clearly negative eigenvalues too."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model


def tiny_mlp(seed: int = 0) -> nn.Module:
    """MLP 64-12-10 with tanh: 910 parameters."""
    torch.manual_seed(seed)
    m = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[12], activation="tanh").double()
    x, y = digits_subset()
    return _settle(m, x, y, steps=20, lr=0.05, seed=seed)


def tiny_convnet(seed: int = 0) -> nn.Module:
    """Conv net with BN (channels 3-6-6, global pooling): 628 parameters."""
    torch.manual_seed(seed)
    m = build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=[3, 6, 6], pool=1).double()
    x, y = digits_subset()
    return _settle(m, x, y, steps=20, lr=0.05, seed=seed)


MODELS = {"mlp": tiny_mlp, "convnet_bn": tiny_convnet}


def exact_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss=nn.functional.cross_entropy) -> torch.Tensor:
    """Dense Hessian of the mean loss over (x, y) in eval mode, w.r.t. all parameters in order."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    was_training = model.training
    model.eval()

    def f(flat: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(flat, sizes), shapes)}
        return loss(functional_call(model, (params, buffers), (x,)), y)

    H = torch.autograd.functional.hessian(f, flat0)
    model.train(was_training)
    return (H + H.T) / 2


@functools.lru_cache(maxsize=None)
def case(name: str) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], torch.Tensor, np.ndarray]:
    """(model, data, exact Hessian, its eigenvalues ascending) for ``name`` in MODELS."""
    model = MODELS[name]()
    x, y = digits_subset()
    H = exact_hessian(model, x, y)
    return model, (x, y), H, torch.linalg.eigvalsh(H).numpy()
