"""Spectral density by stochastic Lanczos quadrature (Ghorbani, Krishnan, Xiao 2019).

For a random unit vector ``v``, ``m`` Lanczos steps give a tridiagonal ``T`` whose eigenvalues
``theta_i`` (nodes) and squared first eigenvector components ``tau_i`` (weights, summing to 1)
form the Gauss quadrature rule of the measure ``sum_k (v . u_k)^2 delta(t - lambda_k)``, exact
for polynomials of degree < 2m. Averaged over runs it estimates the spectral density
``(1/P) sum_k delta(t - lambda_k)``: its mean is ``tr(H)/P`` and its second moment
``||H||_F^2 / P``. A Gaussian kernel of width ``sigma`` turns the nodes into a smooth curve on a
grid (Ghorbani et al. take ``sigma^2 = 1e-5`` on a spectrum scaled to ``[-1, 1]``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from ..errors import LandscapeError
from ..renamed import renamed_keywords
from .lanczos import DEFAULT_BLOCK_SIZE, Matmat, Matvec, check_block_size, lanczos_step, stacked
from .rng import generator

DEFAULT_RELATIVE_SIGMA = float(np.sqrt(1e-5))


@dataclass
class Quadrature:
    nodes: np.ndarray    # (n_probes, m)
    weights: np.ndarray  # (n_probes, m), each row sums to 1


def quadrature_moments(nodes: np.ndarray, weights: np.ndarray, order: int = 2) -> list[float]:
    """``sum_i w_i theta_i^p / n_probes`` for p = 1..order: estimates of ``tr(H^p)/P`` from SLQ runs."""
    nodes, weights = np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    w = weights / nodes.shape[0]
    return [float((w * nodes ** p).sum()) for p in range(1, order + 1)]


def lanczos_tridiagonals(matmat: Matmat, V0: torch.Tensor, m: int,
                         bar=None) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """``alpha``, ``beta`` and step count of ``m`` fully reorthogonalized Lanczos steps from each row of ``V0``.

    A run stops early on breakdown (its start vector lies in an invariant subspace, so its
    quadrature is already exact). The runs go in lockstep: one ``matmat`` per step serves every run still going, so a Hessian operator pays one forward
    and first backward per data batch for all of them (`HessianOperator.mm`); each run's
    arithmetic is `lanczos_step`'s, so the result equals running them one after another.
    """
    b, n = V0.shape
    m = min(m, n)
    dev = V0.device
    Qs = [torch.zeros(m, n, dtype=torch.float64, device=dev) for _ in range(b)]
    alphas, betas = [np.zeros(m) for _ in range(b)], [np.zeros(m) for _ in range(b)]
    qs = [v.to(torch.float64) / torch.linalg.vector_norm(v) for v in V0]
    scales = [0.0] * b
    steps: list[int | None] = [None] * b
    for j in range(m):
        active = [i for i in range(b) if steps[i] is None]
        if not active:
            break
        W = matmat(torch.stack([qs[i] for i in active]))
        if bar is not None:
            bar.update(len(active))
        for row, i in enumerate(active):
            w = lanczos_step(lambda _q, w=W[row]: w, Qs[i], j, qs[i], alphas[i], betas[i])
            scales[i] = max(scales[i], abs(alphas[i][j]) + betas[i][j])
            if betas[i][j] <= 1e-10 * max(scales[i], 1e-300):
                steps[i] = j + 1  # an invariant subspace: this run's quadrature is already exact
            else:
                qs[i] = w / betas[i][j]
    done = [m if s is None else s for s in steps]
    return [(alphas[i][:k], betas[i][:k - 1], k) for i, k in enumerate(done)]


# Lockstep runs each hold an m x P float64 basis: cap a block's bases at about this many bytes.
LOCKSTEP_MEMORY = 1 << 30


@renamed_keywords(n_runs="n_probes")
def slq(matvec: Matvec, n: int, n_iter: int, n_probes: int, seed: int = 0, device: str | torch.device = "cpu",
        probes: torch.Tensor | None = None, bar=None, matmat: Matmat | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE, done: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
        on_run: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> tuple[Quadrature, int]:
    """Gauss quadrature nodes and weights from ``n_probes`` Gaussian start vectors (or ``probes``).

    With ``matmat`` (a block product, `HessianOperator.mm`) up to ``block_size`` runs go in
    lockstep, fewer when their Lanczos bases would exceed `LOCKSTEP_MEMORY`; the start vectors
    and the result are those of the one-run-at-a-time path. Long densities resume: ``on_run(r,
    nodes, weights)`` is called as each run finishes, and runs given in ``done`` (run index ->
    its nodes and weights) are not computed again; run ``r`` always starts from the same vector,
    so a resumed quadrature equals an uninterrupted one. The count returned is of new products.
    """
    if n_iter < 1 or n_probes < 1:
        raise LandscapeError(f"n_iter and n_probes must be at least 1, got {n_iter} and {n_probes}")
    check_block_size(block_size)
    gen = generator(seed, "slq")
    dev = torch.device(device)
    m = min(n_iter, n)
    nodes = np.full((n_probes, m), np.nan)
    weights = np.zeros((n_probes, m))
    used = 0
    if matmat is None:  # one run at a time, as a plain matvec has nothing to share
        matmat, block_size = stacked(matvec), 1
    block = max(1, min(block_size, LOCKSTEP_MEMORY // (8 * m * n)))

    def start(r: int) -> torch.Tensor:
        return probes[r].to(dev) if probes is not None else torch.randn(n, generator=gen, dtype=torch.float64).to(dev)

    done = dict(done or {})
    for r, (node_row, weight_row) in done.items():
        if not 0 <= r < n_probes or np.shape(node_row) != (m,) or np.shape(weight_row) != (m,):
            raise LandscapeError(f"finished SLQ run {r} does not fit {n_probes} runs of {m} steps")
        nodes[r], weights[r] = node_row, weight_row
    # Every run's vector is drawn, in order, so run r's never depends on what is done; only a
    # block's worth is held at a time.
    drawn = ((r, start(r)) for r in range(n_probes))
    pending = ((r, v) for r, v in drawn if r not in done)
    while group := list(itertools.islice(pending, block)):
        runs = lanczos_tridiagonals(matmat, torch.stack([v for _, v in group]), m, bar)
        for (r, _), (alpha, beta, steps) in zip(group, runs):
            used += steps
            theta, S = eigh_tridiagonal(alpha, beta)
            nodes[r, :steps] = theta
            weights[r, :steps] = S[0, :] ** 2
            # After an early breakdown the remaining slots carry zero weight; give them a harmless node.
            nodes[r, steps:] = theta[-1]
            if on_run is not None:
                on_run(r, nodes[r].copy(), weights[r].copy())
    return Quadrature(nodes, weights), used


def smooth_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray | None = None,
                   sigma: float | None = None, grid_size: int = 1000) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-kernel density of the averaged quadrature on a grid; integrates to ~1 over the grid.

    ``sigma`` defaults to ``sqrt(1e-5) * (max node - min node)``; the default grid extends two
    percent of the range plus five ``sigma`` past the extreme nodes so no mass falls outside.
    """
    flat_nodes = nodes.reshape(-1)
    flat_w = weights.reshape(-1) / nodes.shape[0]
    lo, hi = float(np.min(flat_nodes)), float(np.max(flat_nodes))
    width = hi - lo
    if sigma is None:
        sigma = DEFAULT_RELATIVE_SIGMA * width if width > 0 else max(abs(hi), 1.0) * 1e-3
    if not sigma > 0:
        raise LandscapeError(f"sigma must be positive, got {sigma}")
    if grid is None:
        pad = 0.02 * width + 5 * sigma
        grid = np.linspace(lo - pad, hi + pad, grid_size)
    grid = np.asarray(grid, dtype=np.float64)
    density = np.zeros_like(grid)
    norm = 1.0 / (sigma * np.sqrt(2 * np.pi))
    for start in range(0, len(flat_nodes), 256):  # bounded memory for long runs
        t = flat_nodes[start:start + 256, None]
        density += (flat_w[start:start + 256, None] * norm * np.exp(-0.5 * ((grid[None, :] - t) / sigma) ** 2)).sum(0)
    return grid, density, float(sigma)


def plot_density(grid: np.ndarray, density: np.ndarray, path, title: str | None = None, log: bool = True) -> None:
    """Moved to `landscape.plot.density.plot_density`; kept here for older imports."""
    from ..plot.density import plot_density as draw

    draw(grid, density, path, title, log)
