"""Extreme eigenvalues by power iteration with deflation: the simple alternative to Lanczos.

Each eigenvalue is found by iterating ``v <- B v / ||B v||`` on the operator restricted to the
complement of the eigenvectors already found (deflation by projection). Plain power iteration
finds the eigenvalue of largest *magnitude*, which on a non-convex loss may be a negative one; so
when a negative value comes out while the largest are wanted (or for the smallest), the operator
is shifted to ``B = H - sigma I`` with ``sigma`` chosen so the wanted end dominates. The stop is
the residual ``||H v - theta v|| <= tol * |theta|`` (a rigorous error bound for symmetric ``H``),
not the change of ``theta`` between iterations, which stops early (and off) on close eigenvalues.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import LandscapeError
from .lanczos import LanczosRun, Matvec
from .rng import generator


def _deflate(v: torch.Tensor, found: list[torch.Tensor]) -> torch.Tensor:
    for _ in range(2):
        for u in found:
            v = v - (u @ v) * u
    return v


def _power_one(matvec: Matvec, n: int, found: list[torch.Tensor], shift: float, tol: float, max_iter: int,
               gen: torch.Generator, dev: torch.device, bar) -> tuple[float, float, torch.Tensor, int, bool]:
    """Dominant eigenpair of ``(H - shift I)`` on the complement of ``found``; returns H's eigenvalue."""
    v = _deflate(torch.randn(n, generator=gen, dtype=torch.float64).to(dev), found)
    v /= torch.linalg.vector_norm(v)
    theta, residual = 0.0, float("inf")
    for it in range(1, max_iter + 1):
        hv = _deflate(matvec(v).to(device=dev, dtype=torch.float64), found)
        bar.update(1)
        theta = float(v @ hv)  # Rayleigh quotient of H
        r = hv - theta * v
        residual = float(torch.linalg.vector_norm(r))
        if residual <= tol * abs(theta):
            return theta, residual, v, it, True
        w = hv - shift * v
        norm = torch.linalg.vector_norm(w)
        if not norm > 0:
            return theta, residual, v, it, False
        v = w / norm
    return theta, residual, v, max_iter, False


def power_iteration(matvec: Matvec, n: int, k: int = 1, which: str = "largest", tol: float = 1e-4,
                    max_iter: int = 1000, seed: int = 0, device: str | torch.device = "cpu",
                    return_vectors: bool = False, progress: bool = False) -> LanczosRun:
    """``k`` largest or smallest eigenvalues, one at a time with deflation.

    ``max_iter`` bounds the products spent on *each* eigenvalue (plus the ones spent locating
    the spectrum's far end when a shift is needed). Results use `LanczosRun`'s fields;
    ``n_iter`` is the total number of products.
    """
    if which not in ("largest", "smallest"):
        raise LandscapeError(f"power iteration finds which='largest' or 'smallest', got {which!r}")
    if not 1 <= k <= n:
        raise LandscapeError(f"k must be between 1 and the number of parameters ({n}), got {k}")
    dev = torch.device(device)
    gen = generator(seed, "power")
    from tqdm.auto import tqdm
    bar = tqdm(total=None, desc=f"power ({which})", unit="hvp", disable=not progress, leave=False, dynamic_ncols=True)
    found: list[torch.Tensor] = []
    values, residuals = [], []
    converged, total = True, 0
    shift = 0.0
    try:
        if which == "smallest":
            # The dominant eigenvalue mu bounds the spectrum: H - |mu| I makes the smallest dominate.
            mu, _, _, its, _ = _power_one(matvec, n, [], 0.0, tol, max_iter, gen, dev, bar)
            total += its
            shift = abs(mu)
        for _ in range(k):
            theta, res, v, its, ok = _power_one(matvec, n, found, shift, tol, max_iter, gen, dev, bar)
            total += its
            if which == "largest" and theta < 0 and shift == 0.0:
                # The dominant remaining eigenvalue is negative, so every remaining one lies in
                # [theta, |theta|]: shifting by theta makes the largest dominate.
                shift = theta
                theta, res, v, its, ok = _power_one(matvec, n, found, shift, tol, max_iter, gen, dev, bar)
                total += its
            found.append(v)
            values.append(theta)
            residuals.append(res)
            converged &= ok
    finally:
        bar.close()
    vals, res = np.array(values), np.array(residuals)
    order = np.argsort(-vals) if which == "largest" else np.argsort(vals)
    vectors = torch.stack(found)[torch.from_numpy(order.copy())] if return_vectors else None
    return LanczosRun(values=vals[order], errors=res[order], residuals=res[order], converged=bool(converged),
                      n_iter=total, vectors=vectors)
