"""Lanczos eigenvalues against exact dense eigendecompositions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hessian_cases import HVP_BATCH, case
from landscape.errors import LandscapeError
from landscape.hessian import block_lanczos, eigenvalues, lanczos


def spd_with_spectrum(values: np.ndarray, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.as_tensor(values, dtype=torch.float64)) @ Q.T


# ---------------------------------------------------------------- the algorithm on dense matrices
def test_dense_matrix_top_bottom_and_both():
    rng = np.random.default_rng(0)
    values = np.concatenate([[40, 25, 18, 12, 9], rng.uniform(-0.5, 2.0, 395), [-6, -4, -3]])
    A = spd_with_spectrum(values)
    exact = np.sort(values)
    top = lanczos(lambda v: A @ v, len(values), k=5, which="largest", tol=1e-12)
    assert top.converged and top.n_iter < len(values)  # stopped on residuals, well before n
    assert np.allclose(top.values, exact[::-1][:5], rtol=1e-10)
    bottom = lanczos(lambda v: A @ v, len(values), k=3, which="smallest", tol=1e-12)
    assert bottom.converged
    assert np.allclose(bottom.values, exact[:3], rtol=1e-10)
    both = lanczos(lambda v: A @ v, len(values), k=1, which="both", tol=1e-12)
    assert np.allclose(both.values, [exact[0], exact[-1]], rtol=1e-10)


def test_error_estimates_bound_the_actual_errors_and_loose_tol_costs_less():
    rng = np.random.default_rng(1)
    values = np.concatenate([[10.0, 9.0, 8.5], rng.uniform(0, 7, 297)])
    A = spd_with_spectrum(values, seed=1)
    exact = np.sort(values)[::-1][:3]
    loose = lanczos(lambda v: A @ v, 300, k=3, tol=1e-3)
    tight = lanczos(lambda v: A @ v, 300, k=3, tol=1e-12)
    assert loose.n_iter < tight.n_iter
    assert np.all(np.abs(loose.values - exact) <= np.maximum(loose.residuals, 1e-12))  # rigorous bound
    assert np.all(np.abs(loose.values - exact) <= 1e-3 * exact)                        # the asked accuracy


def test_full_krylov_space_recovers_the_whole_spectrum_and_vectors():
    values = np.linspace(-1, 3, 30)
    A = spd_with_spectrum(values, seed=2)
    run = lanczos(lambda v: A @ v, 30, k=30, tol=1e-12, return_vectors=True)
    assert np.allclose(run.values, values[::-1], atol=1e-10)
    V = run.vectors
    assert torch.allclose(V @ V.T, torch.eye(30, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(A @ V.T, V.T * torch.from_numpy(run.values.copy()), atol=1e-9)


def test_invariant_start_vector_breakdown_continues_in_the_complement():
    A = torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64))
    v0 = torch.tensor([0, 0, 1.0, 0, 0], dtype=torch.float64)  # an eigenvector: Krylov space of dim 1
    run = lanczos(lambda v: A @ v, 5, k=2, tol=1e-12, v0=v0)
    assert np.allclose(run.values, [5.0, 4.0])


def test_argument_errors():
    with pytest.raises(LandscapeError, match="k must be"):
        lanczos(lambda v: v, 4, k=5)
    with pytest.raises(LandscapeError, match="which"):
        lanczos(lambda v: v, 4, which="middle")


# ---------------------------------------------------------------- on tiny models (issue 4 Done list)
@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_top5_and_bottom3_match_the_exact_hessian(name):
    model, data, _, ev = case(name)
    top = eigenvalues(model, data, k=5, tol=1e-9, batch_size=HVP_BATCH)
    assert top.converged
    assert np.all(np.abs(top.values - ev[::-1][:5]) <= 1e-4 * np.abs(ev[::-1][:5]))
    bottom = eigenvalues(model, data, k=3, which="smallest", tol=1e-9, batch_size=HVP_BATCH)
    assert bottom.converged and np.all(bottom.values < 0)
    assert np.all(np.abs(bottom.values - ev[:3]) <= 1e-4 * np.abs(ev[:3]))
    assert top.n_hvps < 100 and bottom.n_hvps < 150  # far fewer products than parameters
    assert top.settings["num_params"] == len(ev) and top.settings["weight_decay_included"] is False


def test_weight_decay_shifts_every_eigenvalue_by_exactly_wd():
    model, data, _, ev = case("mlp")
    wd = 5e-3
    top = eigenvalues(model, data, k=5, tol=1e-10, batch_size=HVP_BATCH, weight_decay=wd)
    bottom = eigenvalues(model, data, k=3, which="smallest", tol=1e-10, batch_size=HVP_BATCH, weight_decay=wd)
    assert np.allclose(top.values, ev[::-1][:5] + wd, rtol=0, atol=1e-10)
    assert np.allclose(bottom.values, ev[:3] + wd, rtol=0, atol=1e-10)
    assert top.settings["weight_decay"] == wd and top.settings["weight_decay_included"] is True


def test_layer_subset_eigenvalues_are_those_of_the_hessian_block():
    model, data, H, _ = case("convnet_bn")
    sizes = [p.numel() for p in model.parameters()]
    n_head = sum(p.numel() for n, p in model.named_parameters() if n.startswith("classifier."))
    block = H[-n_head:, -n_head:]  # the classifier is the last module
    assert sum(sizes) == H.shape[0]
    exact = torch.linalg.eigvalsh(block).numpy()
    res = eigenvalues(model, data, k=2, tol=1e-10, params="classifier", batch_size=HVP_BATCH)
    assert np.allclose(res.values, exact[::-1][:2], rtol=1e-8)
    assert res.settings["params"] == "classifier" and res.settings["num_params"] == n_head


def test_eigenvectors_and_model_mode_are_handed_back():
    model, data, H, ev = case("mlp")
    model.train()
    try:
        res = eigenvalues(model, data, k=2, tol=1e-10, batch_size=HVP_BATCH, return_vectors=True)
        assert all(m.training for m in model.modules())
    finally:
        model.eval()
    V = res.vectors
    assert V.shape == (2, len(ev))
    actual = torch.linalg.vector_norm(H @ V.T - V.T * torch.from_numpy(res.values.copy()), dim=0).numpy()
    assert np.allclose(actual, res.residuals, rtol=1e-3, atol=1e-12)  # the Ritz residual is the true one
    assert np.all(actual < 1e-4)
    d = res.to_dict()
    assert "vectors" not in d and len(d["values"]) == 2 and d["n_hvps"] == res.n_hvps


# ---------------------------------------------------------------- block Lanczos (issue 16)
def _spectra():
    rng = np.random.default_rng(3)
    bulk = rng.uniform(-0.5, 2.0, 195)
    return {"separated": np.concatenate([[40, 25, 18, 12, 9], bulk]),
            "clustered": np.concatenate([[10, 10 - 1e-4, 10 - 2e-4, 9.99, 9.9], bulk]),
            "repeated": np.concatenate([[7, 7, 7, 5, 5], bulk])}


@pytest.mark.parametrize("name", ["separated", "clustered", "repeated"])
@pytest.mark.parametrize("block_size", [1, 3, 4])
def test_block_lanczos_on_known_spectra(name, block_size):
    values = _spectra()[name]
    A = spd_with_spectrum(values, seed=4)
    exact = np.sort(values)
    top = block_lanczos(lambda V: V @ A, len(values), k=5, block_size=block_size, tol=1e-12)
    assert top.converged and top.n_iter < len(values)
    np.testing.assert_allclose(top.values, exact[::-1][:5], rtol=1e-6)
    assert np.all(np.abs(top.values - exact[::-1][:5]) <= np.maximum(top.residuals, 1e-12))  # rigorous bound
    bottom = block_lanczos(lambda V: V @ A, len(values), k=2, block_size=block_size, which="smallest", tol=1e-12)
    np.testing.assert_allclose(bottom.values, exact[:2], rtol=1e-6)


def test_block_lanczos_repeated_eigenvalue_inside_one_block_and_vectors():
    # Multiplicity 3 at the top: one block of 3 holds all copies from the first step.
    values = np.concatenate([[6.0, 6.0, 6.0], np.linspace(0, 3, 57)])
    A = spd_with_spectrum(values, seed=5)
    run = block_lanczos(lambda V: V @ A, 60, k=4, block_size=3, tol=1e-12, return_vectors=True)
    np.testing.assert_allclose(run.values, [6, 6, 6, 3], rtol=1e-10)
    V = run.vectors
    assert torch.allclose(V @ V.T, torch.eye(4, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(A @ V.T, V.T * torch.from_numpy(run.values.copy()), atol=1e-8)


def test_block_lanczos_exhausts_a_small_space_and_rejects_bad_arguments():
    A = torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64))
    run = block_lanczos(lambda V: V @ A, 5, k=5, block_size=2, tol=1e-12)
    np.testing.assert_allclose(run.values, [5, 4, 3, 2, 1], atol=1e-12)
    with pytest.raises(LandscapeError, match="block_size"):
        block_lanczos(lambda V: V, 4, block_size=0)
    with pytest.raises(LandscapeError, match="which"):
        block_lanczos(lambda V: V, 4, which="both")


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_block_solver_matches_the_exact_hessian(name):
    model, data, _, ev = case(name)
    top = eigenvalues(model, data, k=5, method="block", block_size=3, tol=1e-10, batch_size=HVP_BATCH)
    assert top.converged and top.settings["solver"] == "block"
    assert np.all(np.abs(top.values - ev[::-1][:5]) <= 1e-6 * np.abs(ev[::-1][:5]))
    bottom = eigenvalues(model, data, k=2, which="smallest", method="block", block_size=2, tol=1e-10,
                         batch_size=HVP_BATCH)
    assert np.all(np.abs(bottom.values - ev[:2]) <= 1e-6 * np.abs(ev[:2]))


def test_auto_method_picks_the_solver_by_the_cost_of_a_product(monkeypatch):
    import landscape.hessian as hessian

    model, data, _, ev = case("mlp")
    kept = eigenvalues(model, data, k=3, tol=1e-10, batch_size=HVP_BATCH)  # graphs fit: single-vector Lanczos
    assert kept.settings["solver"] == "lanczos" and kept.settings["graphs_retained"] is True
    np.testing.assert_allclose(kept.values, ev[::-1][:3], rtol=1e-6)
    monkeypatch.setattr(hessian, "AUTO_BLOCK_FORWARD_SHARE", -1.0)  # any shared forward pays for blocks
    blocked = eigenvalues(model, data, k=3, tol=1e-10, batch_size=HVP_BATCH, retain_bytes=0)
    assert blocked.settings["solver"] == "block" and blocked.settings["graphs_retained"] is False
    np.testing.assert_allclose(blocked.values, ev[::-1][:3], rtol=1e-6)
