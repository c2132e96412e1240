"""Worst-case and average-case (adaptive) sharpness against closed forms on quadratics.

At a minimum of ``L(w) = 1/2 (w - c)^T H (w - c)`` with ``delta = c_w * u``: the worst case over
``||u||_2 <= rho`` is ``rho^2/2 * lambda_max(C H C)``, over ``||u||_inf <= rho`` with diagonal
``H`` it is ``rho^2/2 * sum_i h_i c_i^2``, and the average over ``u ~ N(0, rho^2 I)`` is
``rho^2/2 * tr(C H C)``; ``C = diag(|w|)`` (adaptive) or ``I``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpness_cases import Quadratic, mean_output
from landscape.errors import LandscapeError
from landscape.sharpness import adaptive, average

RHO = 0.1
DATA = (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4))


def dense_case(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.tensor([3.0, 1.5, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1], dtype=torch.float64)[:n]
    H = Q @ torch.diag(lam) @ Q.T
    c = torch.randn(n, generator=g, dtype=torch.float64)
    return Quadratic(c, H), H, c


@pytest.mark.parametrize("is_adaptive", [False, True])
def test_worst_case_l2_is_the_top_eigenvalue_of_the_scaled_hessian(is_adaptive):
    model, H, c = dense_case()
    res = adaptive(model, DATA, rho=RHO, p=2, adaptive=is_adaptive, n_steps=60, loss=mean_output)
    C = torch.diag(c.abs()) if is_adaptive else torch.eye(len(c), dtype=torch.float64)
    expected = 0.5 * RHO ** 2 * float(torch.linalg.eigvalsh(C @ H @ C)[-1])
    assert res.value == pytest.approx(expected, rel=1e-6)
    assert res.value <= expected * (1 + 1e-12)  # a feasible point can never beat the maximum
    assert torch.equal(model.w.detach(), c)
    assert res.settings["adaptive"] is is_adaptive and res.settings["p"] == "2"


@pytest.mark.parametrize("is_adaptive", [False, True])
def test_worst_case_linf_on_a_diagonal_quadratic_is_the_box_vertex(is_adaptive):
    n = 8
    g = torch.Generator().manual_seed(3)
    h = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    c = torch.randn(n, generator=g, dtype=torch.float64)
    model = Quadratic(c)
    x = h.expand(6, n).clone()  # every sample has curvature h
    res = adaptive(model, (x, torch.zeros(6)), rho=RHO, p="inf", adaptive=is_adaptive, n_steps=5, loss=mean_output)
    scale = c.abs() if is_adaptive else torch.ones(n, dtype=torch.float64)
    assert res.value == pytest.approx(0.5 * RHO ** 2 * float((h * scale ** 2).sum()), rel=1e-10)


@pytest.mark.parametrize("is_adaptive", [False, True])
def test_average_case_matches_the_trace_within_three_standard_errors(is_adaptive):
    model, H, c = dense_case()
    res = average(model, DATA, rho=RHO, adaptive=is_adaptive, n_probes=400, loss=mean_output, seed=5)
    C = torch.diag(c.abs()) if is_adaptive else torch.eye(len(c), dtype=torch.float64)
    expected = 0.5 * RHO ** 2 * float(torch.trace(C @ H @ C))
    assert abs(res.value - expected) <= 3 * res.stderr
    assert res.stderr < 0.1 * expected
    assert res.settings["kind"] == "average" and res.settings["n_probes"] == 400


def test_m_sharpness_averages_per_group_maxima():
    """Sample i has curvature diag(x_i); a group's worst case is rho^2/2 * max_j mean_{i in group} x_ij."""
    n, N, m = 6, 12, 5
    g = torch.Generator().manual_seed(4)
    c = torch.randn(n, generator=g, dtype=torch.float64)
    X = torch.rand(N, n, generator=g, dtype=torch.float64) * 0.5 + 0.1
    X[0:5, 0] += 1.0   # each group's largest curvature is a different, well-separated coordinate
    X[5:10, 3] += 1.2
    X[10:12, 5] += 1.5
    model = Quadratic(c)
    res = adaptive(model, (X, torch.zeros(N)), rho=RHO, p=2, adaptive=False, m=m, n_steps=200, loss=mean_output)
    groups = [X[0:5], X[5:10], X[10:12]]
    expected = sum(len(G) / N * 0.5 * RHO ** 2 * float(G.mean(0).max()) for G in groups)
    full = 0.5 * RHO ** 2 * float(X.mean(0).max())
    assert res.value == pytest.approx(expected, rel=1e-6)
    assert res.n_groups == 3 and res.stderr > 0
    assert expected > full * 1.01  # m-sharpness really differs from the full-batch measure here
    # Full data: the top two mean curvatures are close (0.80 vs 0.77), so ascent needs more steps.
    whole = adaptive(model, (X, torch.zeros(N)), rho=RHO, p=2, adaptive=False, n_steps=1000, loss=mean_output)
    assert whole.value == pytest.approx(full, rel=1e-6)


def test_sharpness_on_a_real_model_restores_weights_and_mode():
    from landscape import build_model, get_dataset

    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[16])
    d = get_dataset("digits", "train")
    data = (d.inputs[:128], d.targets[:128])
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    worst = adaptive(model, data, rho=0.05, p=2, n_steps=5)
    avg = average(model, data, rho=0.05, n_probes=5)
    assert worst.value > 0 and np.isfinite(avg.value)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_adaptive_errors():
    model, _, _ = dense_case()
    with pytest.raises(LandscapeError, match="p must be 2 or 'inf'"):
        adaptive(model, DATA, p=1, loss=mean_output)
    with pytest.raises(LandscapeError, match="rho"):
        adaptive(model, DATA, rho=-1, loss=mean_output)
    with pytest.raises(LandscapeError, match="kind"):
        adaptive(model, DATA, kind="best", loss=mean_output)
