"""Power iteration with deflation against exact eigendecompositions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hessian_cases import HVP_BATCH, case
from landscape.errors import LandscapeError
from landscape.hessian import eigenvalues, power_iteration


def matrix(values, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.as_tensor(values, dtype=torch.float64)) @ Q.T


def test_largest_with_deflation_on_a_dense_matrix():
    values = np.concatenate([[10.0, 6.0, 4.0], np.linspace(-1, 2, 57)])
    A = matrix(values)
    run = power_iteration(lambda v: A @ v, 60, k=3, tol=1e-9, max_iter=2000)
    assert run.converged
    assert np.allclose(run.values, [10.0, 6.0, 4.0], rtol=1e-8)


def test_largest_when_a_negative_eigenvalue_dominates_in_magnitude():
    values = np.concatenate([[-12.0, 5.0, 3.0], np.linspace(-1, 1, 37)])
    A = matrix(values, seed=1)
    run = power_iteration(lambda v: A @ v, 40, k=2, tol=1e-9, max_iter=5000)
    assert np.allclose(run.values, [5.0, 3.0], rtol=1e-7)


def test_smallest_on_a_dense_matrix():
    values = np.concatenate([[-4.0, -2.0], np.linspace(0, 3, 38)])
    A = matrix(values, seed=2)
    run = power_iteration(lambda v: A @ v, 40, k=2, which="smallest", tol=1e-9, max_iter=5000,
                          return_vectors=True)
    assert np.allclose(run.values, [-4.0, -2.0], rtol=1e-7)
    V = run.vectors
    assert torch.allclose(A @ V.T, V.T * torch.from_numpy(run.values.copy()), atol=1e-6)


def test_stops_on_residual_and_reports_non_convergence():
    A = matrix(np.array([1.0, 0.999] + [0.5] * 18), seed=3)  # nearly degenerate top pair
    run = power_iteration(lambda v: A @ v, 20, k=1, tol=1e-12, max_iter=5)
    assert not run.converged and run.n_iter == 5


def test_power_matches_exact_hessian_of_a_tiny_mlp():
    model, data, _, ev = case("mlp")
    res = eigenvalues(model, data, k=3, method="power", tol=1e-7, batch_size=HVP_BATCH)
    assert res.converged
    assert np.all(np.abs(res.values - ev[::-1][:3]) <= 1e-4 * np.abs(ev[::-1][:3]))
    assert res.settings["method"] == "power"


def test_power_refuses_both():
    with pytest.raises(LandscapeError, match="largest' or 'smallest"):
        power_iteration(lambda v: v, 5, which="both")
