"""Extreme eigenvalues by Lanczos with full reorthogonalization, stopped on Ritz residuals.

Why not a fixed Krylov size (PyHessian's SLQ, scipy's ``ncv``): the number of products needed
depends on the spectrum, and each product is a pass over the whole dataset. After every step the
tridiagonal ``T_j`` is diagonalised (``eigh_tridiagonal``) and each wanted Ritz value ``theta_i``
gets its residual ``r_i = beta_j |s_{j,i}|`` (= ``||H y_i - theta_i y_i||``, free of charge).
Since ``H`` is symmetric there is an eigenvalue within ``r_i`` of ``theta_i``, and within
``r_i^2 / gap_i`` once the Ritz values have separated (Parlett, *The Symmetric Eigenvalue
Problem*, 11.7); the iteration stops as soon as that estimate is below ``tol * |theta_i|`` for
every wanted eigenvalue. Full reorthogonalization (twice, Kahan-Parlett "twice is enough")
keeps the basis orthogonal so converged eigenvalues never reappear as ghosts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from ..errors import LandscapeError
from ..reprs import ShortRepr
from .rng import generator

Matvec = Callable[[torch.Tensor], torch.Tensor]
Matmat = Callable[[torch.Tensor], torch.Tensor]  # (k, n) -> (k, n): rows H v_i (e.g. HessianOperator.mm)
DEFAULT_BLOCK_SIZE = 8  # vectors per block product; memory ~ 2 * block_size * P float64 on the device


def stacked(matvec: Matvec) -> Matmat:
    """A block product made of one ``matvec`` per row, for operators without a ``matmat`` of their own."""
    def matmat(V: torch.Tensor) -> torch.Tensor:
        return torch.stack([matvec(v) for v in V])
    return matmat


def check_block_size(block_size: int) -> None:
    if block_size < 1:
        raise LandscapeError(f"block_size must be at least 1, got {block_size}")
WHICH = ("largest", "smallest", "both")


@dataclass(repr=False)
class LanczosRun(ShortRepr):
    """Raw output of one Lanczos run: wanted Ritz values and what it took to get them."""

    values: np.ndarray            # wanted eigenvalues (largest: descending; smallest: ascending)
    errors: np.ndarray            # a-posteriori error estimates, same order
    residuals: np.ndarray         # Ritz residual norms ||H y - theta y||, same order
    converged: bool
    n_iter: int                   # Krylov dimension reached (= products performed)
    vectors: torch.Tensor | None = None  # (k, P) Ritz vectors when asked for
    alpha: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _wanted(n_ritz: int, k: int, which: str) -> np.ndarray:
    k = min(k, n_ritz)
    if which == "largest":
        return np.arange(n_ritz - 1, n_ritz - 1 - k, -1)
    if which == "smallest":
        return np.arange(k)
    lo = np.arange(min(k, n_ritz))
    hi = np.arange(n_ritz - 1, n_ritz - 1 - k, -1)
    return np.unique(np.concatenate([lo, hi]))


def error_estimates(theta: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """``min(r, r^2 / gap)`` with ``gap`` the distance to the nearest other Ritz value."""
    if len(theta) < 2:
        return residuals.copy()
    gaps = np.empty_like(theta)
    diffs = np.diff(theta)
    gaps[0], gaps[-1] = diffs[0], diffs[-1]
    if len(theta) > 2:
        gaps[1:-1] = np.minimum(diffs[:-1], diffs[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = np.where(gaps > 0, residuals ** 2 / gaps, np.inf)
    return np.minimum(residuals, quad)



def lanczos_step(matvec: Matvec, Q: torch.Tensor, j: int, q: torch.Tensor, alpha: np.ndarray,
                 beta: np.ndarray) -> torch.Tensor:
    """Step ``j``: store ``q`` as row ``j`` of ``Q``, fill ``alpha[j]`` and ``beta[j]``, return the residual.

    The residual is orthogonalized against the whole basis twice (full reorthogonalization), so
    Ritz values stay free of the ghost copies plain Lanczos produces.
    """
    Q[j] = q
    w = matvec(q).to(device=Q.device, dtype=torch.float64)
    alpha[j] = float(q @ w)
    w -= alpha[j] * q
    if j > 0:
        w -= beta[j - 1] * Q[j - 1]
    basis = Q[: j + 1]
    for _ in range(2):
        w -= basis.T @ (basis @ w)
    beta[j] = float(torch.linalg.vector_norm(w))
    return w

def lanczos(matvec: Matvec, n: int, k: int = 1, which: str = "largest", tol: float = 1e-6,
            max_iter: int | None = None, v0: torch.Tensor | None = None, seed: int = 0,
            device: str | torch.device = "cpu", return_vectors: bool = False,
            progress: bool = False, desc: str = "lanczos") -> LanczosRun:
    """Top ``k`` (``which="largest"``), bottom ``k`` (``"smallest"``) or ``k`` at each end (``"both"``).

    ``matvec`` maps a float64 vector of length ``n`` on ``device`` to ``H v``. The start vector is
    ``v0`` or a Gaussian drawn with ``seed``. At most ``max_iter`` (default ``min(n, 300)``)
    products are used; ``converged`` says whether every wanted value met ``tol``.
    """
    if which not in WHICH:
        raise LandscapeError(f"which must be one of {WHICH}, got {which!r}")
    if not 1 <= k <= n:
        raise LandscapeError(f"k must be between 1 and the number of parameters ({n}), got {k}")
    if not tol > 0:
        raise LandscapeError(f"tol must be positive, got {tol}")
    m = min(n, max_iter if max_iter is not None else 300)
    need = 2 * k if which == "both" else k
    if m < min(need, n):
        raise LandscapeError(f"max_iter={m} cannot produce {need} eigenvalues; raise max_iter")
    gen = generator(seed, "lanczos")
    dev = torch.device(device)
    q = (v0.detach().to(torch.float64).clone() if v0 is not None
         else torch.randn(n, generator=gen, dtype=torch.float64)).to(dev)
    norm = torch.linalg.vector_norm(q)
    if not norm > 0:
        raise LandscapeError("the Lanczos start vector is zero")
    q /= norm
    # The basis grows in chunks: most runs stop after tens of steps, and m rows of a large model's
    # parameter count would be gigabytes reserved for nothing.
    Q = torch.zeros(min(m, 32), n, dtype=torch.float64, device=dev)
    alpha = np.zeros(m)
    beta = np.zeros(m)
    scale = 0.0  # running estimate of ||H|| for the breakdown test
    result: LanczosRun | None = None

    from tqdm.auto import tqdm
    bar = tqdm(total=m, desc=desc, unit="hvp", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for j in range(m):
            if j == Q.shape[0]:
                Q = torch.cat([Q, torch.zeros(min(Q.shape[0], m - j), n, dtype=torch.float64, device=dev)])
            w = lanczos_step(matvec, Q, j, q, alpha, beta)
            basis = Q[: j + 1]
            scale = max(scale, abs(alpha[j]) + beta[j] + (beta[j - 1] if j > 0 else 0.0))
            bar.update(1)
            breakdown = beta[j] <= 1e-10 * max(scale, 1e-300)
            last = j + 1 == m
            if (_should_check(j) or last or breakdown) and j + 1 >= min(need, n):
                result = _ritz(alpha[: j + 1], beta[: j + 1], k, which, tol, breakdown and j + 1 < n)
                if progress:
                    bar.set_postfix(err=f"{float(np.max(result.errors / np.maximum(np.abs(result.values), 1e-300))):.1e}")
                if result.converged or last or j + 1 == n:
                    break
            if breakdown:
                # Invariant subspace: its Ritz values are exact; continue in its complement.
                beta[j] = 0.0
                q = torch.randn(n, generator=gen, dtype=torch.float64).to(dev)
                for _ in range(2):
                    q -= basis.T @ (basis @ q)
                q /= torch.linalg.vector_norm(q)
            else:
                q = w / beta[j]
    finally:
        bar.close()
    assert result is not None
    if return_vectors:
        theta, S = eigh_tridiagonal(alpha[: result.n_iter], beta[: result.n_iter - 1])
        idx = _order(theta, k, which)
        S_t = torch.from_numpy(np.ascontiguousarray(S[:, idx])).to(dev)
        result.vectors = (Q[: result.n_iter].T @ S_t).T.contiguous()
    result.alpha, result.beta = alpha[: result.n_iter].copy(), beta[: result.n_iter].copy()
    return result


def _should_check(j: int) -> bool:
    """Check every step while the basis is small, then every ~2% (eigh on T_j is O(j^2))."""
    return j < 200 or j % max(1, j // 50) == 0


def _order(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    idx = _wanted(len(theta), k, which)
    if which == "both":
        idx = np.sort(idx)
    return idx


def _ritz(alpha: np.ndarray, beta: np.ndarray, k: int, which: str, tol: float, breakdown_pending: bool) -> LanczosRun:
    j = len(alpha)
    theta, S = eigh_tridiagonal(alpha, beta[: j - 1])
    residuals = np.abs(beta[j - 1] * S[-1, :])
    errors = error_estimates(theta, residuals)
    idx = _order(theta, k, which)
    vals, errs, res = theta[idx], errors[idx], residuals[idx]
    converged = bool(np.all(errs <= tol * np.abs(vals))) and not breakdown_pending
    return LanczosRun(values=vals, errors=errs, residuals=res, converged=converged, n_iter=j)


def block_lanczos(matmat: Matmat, n: int, k: int = 1, block_size: int = DEFAULT_BLOCK_SIZE, which: str = "largest",
                  tol: float = 1e-6, max_iter: int | None = None, V0: torch.Tensor | None = None, seed: int = 0,
                  device: str | torch.device = "cpu", return_vectors: bool = False, progress: bool = False,
                  desc: str = "block lanczos") -> LanczosRun:
    """The ``k`` largest (or ``which="smallest"``) eigenvalues by block Lanczos, ``block_size`` products a step.

    Why blocks: a block of products shares each data batch's forward and first backward
    (`HessianOperator.mm`), and a block Krylov space holds every copy of a repeated eigenvalue up
    to ``block_size`` of them (a single start vector sees one copy only) and separates close
    clusters in fewer steps. Each step's block ``H Q_j`` is orthogonalized against the whole basis
    (twice) and orthonormalized (QR; directions that vanished are replaced by random ones, so the
    basis keeps growing). Ritz pairs come from the Rayleigh quotient ``Q H Q^T`` (block
    tridiagonal up to rounding) with *explicit* residuals ``||H y - theta y||`` from the stored
    products, and the run stops on the same estimate as `lanczos`: ``min(r, r^2 / gap) <=
    tol * |theta|`` for the ``k`` wanted values. ``n_iter`` counts products (steps x block size).
    """
    check_block_size(block_size)
    if which not in ("largest", "smallest"):
        raise LandscapeError(f"which must be 'largest' or 'smallest' for block Lanczos, got {which!r}")
    if which == "smallest":  # the largest of -H, negated back
        run = block_lanczos(lambda V: -matmat(V), n, k, block_size, "largest", tol, max_iter, V0, seed, device,
                            return_vectors, progress, desc)
        run.values = -run.values
        return run
    if not 1 <= k <= n:
        raise LandscapeError(f"k must be between 1 and the number of parameters ({n}), got {k}")
    if not tol > 0:
        raise LandscapeError(f"tol must be positive, got {tol}")
    b = min(block_size, n)
    m = min(n, max_iter if max_iter is not None else 300)
    if m < k:
        raise LandscapeError(f"max_iter={m} cannot produce {k} eigenvalues; raise max_iter")
    dev = torch.device(device)
    gen = generator(seed, "block-lanczos")
    Q = torch.zeros(0, n, dtype=torch.float64, device=dev)   # orthonormal basis, one row per vector
    HQ = torch.zeros(0, n, dtype=torch.float64, device=dev)  # the products H q, row by row
    block = (V0.detach().to(dev, torch.float64).reshape(-1, n).clone() if V0 is not None
             else torch.randn(b, n, generator=gen, dtype=torch.float64).to(dev))
    result: LanczosRun | None = None
    from tqdm.auto import tqdm
    bar = tqdm(total=m, desc=desc, unit="hvp", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        while True:
            block = _orthonormal_block(block[: m - len(Q)], Q, gen)
            products = matmat(block).to(device=dev, dtype=torch.float64)
            Q, HQ = torch.cat([Q, block]), torch.cat([HQ, products])
            bar.update(len(block))
            result = _block_ritz(Q, HQ, k, tol)
            if progress:
                bar.set_postfix(err=f"{float(np.max(result.errors / np.maximum(np.abs(result.values), 1e-300))):.1e}")
            if result.converged or len(Q) >= m:
                break
            # Next block: the new directions H Q_j brings in (orthogonalized against everything in
            # _orthonormal_block); the earlier blocks' products are already in the basis' span.
            block = products
    finally:
        bar.close()
    if return_vectors:
        result.vectors = _block_ritz(Q, HQ, k, tol, vectors=True).vectors
    return result


def _orthonormal_block(W: torch.Tensor, Q: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rows of ``W`` orthogonalized against the rows of ``Q`` (twice) and orthonormalized.

    Rows that are (numerically) in the span already are replaced by random directions
    orthogonal to everything, so the block keeps its size and the basis its orthonormality.
    """
    scale = float(torch.linalg.matrix_norm(W)) if W.numel() else 0.0
    for _ in range(2):
        if len(Q):
            W = W - (W @ Q.T) @ Q
    for attempt in range(3):
        Qw, R = torch.linalg.qr(W.T)  # W.T: n x b, reduced
        weak = torch.abs(torch.diagonal(R)) <= 1e-10 * max(scale, 1e-300)
        if not bool(weak.any()):
            return Qw.T.contiguous()
        fresh = torch.randn(int(weak.sum()), W.shape[1], generator=gen, dtype=torch.float64).to(W.device)
        keep = Qw.T[~weak]
        for _ in range(2):
            basis = torch.cat([Q, keep]) if len(Q) else keep
            fresh = fresh - (fresh @ basis.T) @ basis
        W = torch.cat([keep, fresh])
        scale = float(torch.linalg.matrix_norm(W))
    raise LandscapeError("block Lanczos could not extend its basis (the operator's space is exhausted)")


def _block_ritz(Q: torch.Tensor, HQ: torch.Tensor, k: int, tol: float, vectors: bool = False) -> LanczosRun:
    """The ``k`` largest Ritz pairs of the basis ``Q`` with explicit residuals and error estimates."""
    T = Q @ HQ.T
    T = (T + T.T) / 2
    theta, S = torch.linalg.eigh(T)
    Y, HY = S.T @ Q, S.T @ HQ  # Ritz vectors and their products, one row each
    residuals = torch.linalg.vector_norm(HY - theta[:, None] * Y, dim=1).cpu().numpy()
    theta_np = theta.cpu().numpy()
    errors = error_estimates(theta_np, residuals)
    idx = _wanted(len(theta_np), k, "largest")
    vals, errs, res = theta_np[idx], errors[idx], residuals[idx]
    run = LanczosRun(values=vals, errors=errs, residuals=res, converged=bool(np.all(errs <= tol * np.abs(vals))),
                     n_iter=len(Q))
    if vectors:
        run.vectors = Y[torch.from_numpy(idx.copy()).to(Y.device)].contiguous()
    return run
