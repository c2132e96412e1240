"""Keskar epsilon-sharpness against the analytic box maximum of quadratics."""
from __future__ import annotations

import itertools

import pytest
import torch

from sharpness_cases import Quadratic, mean_output
from landscape.errors import LandscapeError
from landscape.sharpness import keskar, random_subspace

DATA = (torch.zeros(8, 1, dtype=torch.float64), torch.zeros(8))


def diagonal_case(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    c = torch.randn(n, generator=g, dtype=torch.float64)
    x0 = c + torch.randn(n, generator=g, dtype=torch.float64)  # not at the minimum: the gradient points out
    model = Quadratic(c, torch.diag(h))
    with torch.no_grad():
        model.w.copy_(x0)
    return model, h, c, x0


def test_full_space_matches_the_analytic_box_maximum():
    model, h, c, x0 = diagonal_case()
    eps = 0.05
    res = keskar(model, DATA, eps=eps, loss=mean_output, max_iter=20)
    # f(x + y) = 1/2 sum h_i (x_i + y_i - c_i)^2 is maximised coordinate-wise at y_i = sign(x_i - c_i) b_i.
    b = eps * (x0.abs() + 1)
    f0 = float(0.5 * (h * (x0 - c) ** 2).sum())
    fmax = float(0.5 * (h * ((x0 - c).abs() + b) ** 2).sum())
    assert res.base_loss == pytest.approx(f0, rel=1e-12)
    assert res.max_loss == pytest.approx(fmax, rel=1e-10)
    assert res.value == pytest.approx(100 * (fmax - f0) / (1 + f0), rel=1e-10)
    assert 1 <= res.n_iter <= 20 and res.n_evals >= res.n_iter
    assert torch.equal(model.w.detach(), x0)  # weights restored bit for bit
    assert res.settings["eps"] == eps and res.settings["subspace"] == "full"


def test_subspace_with_identity_equals_full_space():
    model, _, _, _ = diagonal_case(n=9, seed=1)
    full = keskar(model, DATA, eps=0.03, loss=mean_output)
    ident = keskar(model, DATA, eps=0.03, loss=mean_output, subspace=torch.eye(9, dtype=torch.float64))
    assert ident.value == pytest.approx(full.value, rel=1e-12)
    assert ident.max_loss == pytest.approx(full.max_loss, rel=1e-12)
    assert ident.settings["subspace_dim"] == 9


def test_random_subspace_reaches_the_brute_force_vertex_maximum():
    """A convex quadratic is maximised over a box at a vertex: enumerate all 2^p of them."""
    n, p, eps = 10, 3, 0.2
    g = torch.Generator().manual_seed(2)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    H = M @ M.T / n + torch.eye(n, dtype=torch.float64) * 0.1
    c = torch.randn(n, generator=g, dtype=torch.float64)
    model = Quadratic(c, H)
    x0 = c + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    with torch.no_grad():
        model.w.copy_(x0)
    res = keskar(model, DATA, eps=eps, subspace_dim=p, seed=7, loss=mean_output, max_iter=50)
    A = random_subspace(n, p, seed=7)
    b = eps * (torch.linalg.pinv(A) @ x0).abs() + eps

    def f(w):
        d = w - c
        return float(0.5 * d @ H @ d)

    best = max(f(x0 + A @ (torch.tensor(s, dtype=torch.float64) * b)) for s in itertools.product([-1, 1], repeat=p))
    assert res.max_loss == pytest.approx(best, rel=1e-8)
    assert res.settings["subspace_dim"] == p


def test_model_with_batchnorm_is_measured_in_eval_mode_and_handed_back():
    from landscape import build_model, get_dataset

    torch.manual_seed(0)
    model = build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=[3, 6, 6], pool=1)
    d = get_dataset("digits", "train")
    data = (d.inputs[:64], d.targets[:64])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    res = keskar(model, data, eps=1e-3, max_iter=3)
    assert res.value > 0 and res.max_loss >= res.base_loss
    assert all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN statistics untouched


def test_keskar_errors():
    model, _, _, _ = diagonal_case(n=4)
    with pytest.raises(LandscapeError, match="eps"):
        keskar(model, DATA, eps=0.0, loss=mean_output)
    with pytest.raises(LandscapeError, match="subspace_dim"):
        keskar(model, DATA, subspace_dim=10, loss=mean_output)
    with pytest.raises(LandscapeError, match="n x p"):
        keskar(model, DATA, subspace=torch.eye(3), loss=mean_output)
