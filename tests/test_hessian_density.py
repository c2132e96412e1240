"""SLQ spectral density: quadrature identities, moments against the exact Hessian, the PNG."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hessian_cases import HVP_BATCH, case
from landscape.hessian import HessianOperator, density, slq, smooth_density


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_density_sums_to_one_and_moments_match_trace_and_frobenius(name):
    model, data, H, ev = case(name)
    P = len(ev)
    res = density(model, data, n_iter=25, n_probes=8, batch_size=HVP_BATCH, seed=0)
    assert res.n_hvps == 25 * 8
    assert np.allclose(res.weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.trapezoid(res.density, res.grid) == pytest.approx(1.0, abs=1e-3)
    assert res.nodes.min() >= ev[0] - 1e-9 and res.nodes.max() <= ev[-1] + 1e-9
    # Per run, Gauss quadrature gives v^T H v and v^T H^2 v of a random unit vector; their means
    # estimate tr(H)/P and ||H||_F^2/P: agree within 3 standard errors over the runs.
    m1 = (res.weights * res.nodes).sum(axis=1)
    m2 = (res.weights * res.nodes ** 2).sum(axis=1)
    exact1, exact2 = float(torch.trace(H)) / P, float((H ** 2).sum()) / P
    assert abs(m1.mean() - exact1) <= 3 * m1.std(ddof=1) / np.sqrt(len(m1))
    assert abs(m2.mean() - exact2) <= 3 * m2.std(ddof=1) / np.sqrt(len(m2))
    assert res.moments(2) == pytest.approx([m1.mean(), m2.mean()])


def test_quadrature_is_exact_for_the_probe_vectors():
    model, data, H, _ = case("convnet_bn")
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    g = torch.Generator().manual_seed(3)
    probes = torch.randn(2, op.num_params, generator=g, dtype=torch.float64)
    quad, used = slq(op.mv, op.num_params, n_iter=10, n_probes=2, probes=probes)
    assert used == 20
    for r, v in enumerate(probes):
        u = v / torch.linalg.vector_norm(v)
        Hu = H @ u
        for p, expected in [(1, float(u @ Hu)), (2, float(Hu @ Hu)), (3, float(Hu @ H @ Hu))]:
            assert (quad.weights[r] * quad.nodes[r] ** p).sum() == pytest.approx(expected, rel=1e-9)


def test_full_lanczos_nodes_are_the_eigenvalues():
    values = np.array([-2.0, -0.5, 0.1, 0.3, 1.0, 4.0, 9.0])
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(7, 7, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.from_numpy(values)) @ Q.T
    quad, used = slq(lambda v: A @ v, 7, n_iter=7, n_probes=1, seed=0)
    assert used == 7
    assert np.allclose(np.sort(quad.nodes[0]), values, atol=1e-10)


def test_smoothing_is_a_normalised_gaussian_mixture():
    nodes = np.array([[0.0, 10.0]])
    weights = np.array([[0.25, 0.75]])
    grid, dens, sigma = smooth_density(nodes, weights, sigma=0.5, grid_size=4001)
    assert sigma == 0.5
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    peak = 1 / (0.5 * np.sqrt(2 * np.pi))
    assert dens[np.argmin(np.abs(grid - 10.0))] == pytest.approx(0.75 * peak, rel=1e-3)
    assert dens[np.argmin(np.abs(grid - 0.0))] == pytest.approx(0.25 * peak, rel=1e-3)


def test_png_is_written(tmp_path):
    nodes = np.array([[-1.0, 0.0, 0.1, 5.0]])
    weights = np.array([[0.1, 0.6, 0.2, 0.1]])
    grid, dens, _ = smooth_density(nodes, weights)
    from landscape.hessian import plot_density

    path = tmp_path / "density.png"
    plot_density(grid, dens, path, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lockstep_runs_equal_one_at_a_time_also_when_one_breaks_down():
    values = np.array([-1.0, 0.2, 0.5, 1.5, 2.0, 3.0, 7.0, 8.0])
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.from_numpy(values)) @ Q.T
    probes = torch.randn(3, 8, generator=g, dtype=torch.float64)
    probes[1] = Q[:, 2] + 2 * Q[:, 5]  # lies in a 2D invariant subspace: that run stops after 2 steps
    one, used_one = slq(lambda v: A @ v, 8, n_iter=6, n_probes=3, probes=probes)
    products = []
    block, used_block = slq(None, 8, n_iter=6, n_probes=3, probes=probes, block_size=3,
                            matmat=lambda V: products.append(len(V)) or V @ A)
    assert used_one == used_block == 6 + 2 + 6
    assert products == [3, 3, 2, 2, 2, 2]  # the finished run drops out of the block
    assert np.allclose(block.nodes, one.nodes, rtol=0, atol=1e-12)
    assert np.allclose(block.weights, one.weights, rtol=0, atol=1e-12)
    assert np.allclose(np.sort(block.nodes[1, :2]), [0.5, 3.0], atol=1e-10)


def test_density_in_blocks_equals_density_run_by_run():
    model, data, _, _ = case("convnet_bn")
    a = density(model, data, n_iter=12, n_probes=5, batch_size=HVP_BATCH, seed=4, block_size=1)
    b = density(model, data, n_iter=12, n_probes=5, batch_size=HVP_BATCH, seed=4, block_size=3)
    assert a.n_hvps == b.n_hvps == 60
    assert np.allclose(a.nodes, b.nodes, rtol=1e-10, atol=1e-12)
    assert np.allclose(a.weights, b.weights, rtol=1e-10, atol=1e-12)
    with pytest.raises(Exception, match="block_size"):
        density(model, data, n_iter=3, n_probes=1, batch_size=HVP_BATCH, block_size=0)


def test_resumed_density_equals_an_uninterrupted_one():
    model, data, _, _ = case("mlp")
    full = density(model, data, n_iter=10, n_probes=5, batch_size=HVP_BATCH, seed=2, block_size=2)
    saved = {}

    def stop_after_two(r, nodes, weights):
        saved[r] = (nodes, weights)
        if len(saved) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        density(model, data, n_iter=10, n_probes=5, batch_size=HVP_BATCH, seed=2, block_size=2, on_run=stop_after_two)
    assert sorted(saved) == [0, 1]
    finished = []
    resumed = density(model, data, n_iter=10, n_probes=5, batch_size=HVP_BATCH, seed=2, block_size=3, done=saved,
                      on_run=lambda r, *_: finished.append(r))
    assert finished == [2, 3, 4] and resumed.n_hvps == 30 and resumed.settings["resumed_runs"] == 2
    assert np.allclose(resumed.nodes, full.nodes, rtol=1e-10, atol=1e-12)
    assert np.allclose(resumed.weights, full.weights, rtol=1e-10, atol=1e-12)
    with pytest.raises(Exception, match="does not fit"):
        density(model, data, n_iter=10, n_probes=5, batch_size=HVP_BATCH, seed=2, done={7: saved[0]})
