"""PAC-Bayes sigma on a classifier whose answer is known by construction.

Sample ``i`` is classified correctly iff ``w_i + u_i > 0``. With ``w_i = a_i > 0`` and noise
``u_i ~ N(0, s_i^2)`` its error probability is ``Phi(-a_i / s_i)``, so the expected error rise is
``mean_i Phi(-a_i / s_i)`` and the sigma at which it equals the target solves a 1-D equation:
``1 / Phi^{-1}(0.9)`` for ``a = 1`` (or for any ``a`` with magnitude-aware noise and eps = 0).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from sharpness_cases import SignClassifier, sign_data
from landscape.errors import LandscapeError
from landscape.sharpness import pac_bayes_sigma

N = 50_000
TOL = 1e-2
SIGMA_STAR = 1.0 / norm.ppf(0.9)  # 0.7803


def test_plain_sigma_matches_the_closed_form():
    model = SignClassifier(torch.ones(N))
    res = pac_bayes_sigma(model, sign_data(N), target=0.1, n_probes=20, tol=TOL)
    lo, hi = res.bracket
    assert hi - lo <= TOL * hi
    assert abs(res.sigma - SIGMA_STAR) <= TOL * SIGMA_STAR
    assert res.flatness == pytest.approx(1 / res.sigma ** 2)
    assert res.base_loss == 0.0 and res.deviation <= 0.1
    assert torch.equal(model.w.detach(), torch.ones(N, dtype=torch.float64))
    assert res.settings["magnitude_aware"] is False and res.settings["target"] == 0.1


def test_magnitude_aware_sigma_is_scale_free_and_differs_from_plain():
    # The noise stream is decorrelated from plain seeds (landscape.hessian.rng); a seed of its own anyway.
    a = torch.rand(N, generator=torch.Generator().manual_seed(2024), dtype=torch.float64) * 1.5 + 0.5
    model = SignClassifier(a)
    aware = pac_bayes_sigma(model, sign_data(N), magnitude_aware=True, eps=0.0, n_probes=20, tol=TOL)
    assert abs(aware.sigma - SIGMA_STAR) <= TOL * SIGMA_STAR
    plain = pac_bayes_sigma(model, sign_data(N), n_probes=20, tol=TOL)
    an = a.numpy()
    expected = brentq(lambda s: norm.cdf(-an / s).mean() - 0.1, 0.01, 10.0)
    assert abs(plain.sigma - expected) <= TOL * expected
    assert abs(expected - SIGMA_STAR) > 5 * TOL * SIGMA_STAR  # the two variants really answer differently


def test_magnitude_aware_eps_adds_variance():
    """std_i = sqrt(sigma^2 a_i^2 + eps^2) with a = 1: the crossing is at sqrt(sigma*^2 - eps^2)."""
    model = SignClassifier(torch.ones(N))
    eps = 0.4
    res = pac_bayes_sigma(model, sign_data(N), magnitude_aware=True, eps=eps, n_probes=20, tol=TOL)
    expected = np.sqrt(SIGMA_STAR ** 2 - eps ** 2)
    assert abs(res.sigma - expected) <= TOL * expected


def test_loss_metric_on_a_real_model_and_errors():
    from landscape import build_model, get_dataset

    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[16])
    d = get_dataset("digits", "train")
    data = (d.inputs[:128], d.targets[:128])
    res = pac_bayes_sigma(model, data, metric="loss", target=0.1, n_probes=4, tol=0.05)
    assert res.sigma > 0 and res.deviation <= 0.1
    with pytest.raises(LandscapeError, match="metric"):
        pac_bayes_sigma(model, data, metric="accuracy")
    bad = SignClassifier(-torch.ones(10))  # every sample already wrong
    with pytest.raises(LandscapeError, match="error is already"):
        pac_bayes_sigma(bad, sign_data(10))
