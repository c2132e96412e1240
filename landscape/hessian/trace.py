"""Hessian trace by Hutchinson's estimator (with a standard error) and by Hutch++.

A fixed number of probes, never "until the estimate stops moving": a tolerance rule stops on
lucky streaks and biases the estimate (GUIDE.md section 6). The spread of the probes gives a
standard error instead. Hutch++ (Meyer, Musco, Musco, Woodruff 2021) spends a third of the same
product budget on a sketch ``Q`` of the dominant subspace, whose trace ``tr(Q^T H Q)`` is exact,
and Hutchinson's estimator only on the deflated remainder: a Hessian's few large outliers stop
dominating the variance.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import LandscapeError
from ..renamed import renamed_keywords
from ..reprs import ShortRepr
from .lanczos import DEFAULT_BLOCK_SIZE, Matmat, Matvec, check_block_size, stacked
from .rng import generator


@dataclass(repr=False)
class TraceEstimate(ShortRepr):
    value: float
    stderr: float
    n_hvps: int
    samples: np.ndarray  # the per-probe quadratic forms of the stochastic part

    @property
    def n_matvecs(self) -> int:
        """Old name of ``n_hvps`` (deprecated)."""
        warnings.warn("TraceEstimate.n_matvecs is deprecated; use n_hvps", DeprecationWarning, stacklevel=2)
        return self.n_hvps


def _rademacher(shape: tuple[int, ...], gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=gen, dtype=torch.float64) * 2 - 1).to(dev)


def _stderr(samples: np.ndarray) -> float:
    return float(samples.std(ddof=1) / np.sqrt(len(samples))) if len(samples) > 1 else float("nan")


def _blocked(matvec: Matvec, matmat: Matmat | None, dev: torch.device, bar) -> Matmat:
    """``V -> rows H v_i`` through ``matmat`` (one pass over the data per block) or, without one,
    stacked ``matvec`` calls; results as float64 on ``dev``, with the progress bar advanced."""
    def mm(V: torch.Tensor) -> torch.Tensor:
        out = (matmat or stacked(matvec))(V)
        if bar is not None:
            bar.update(len(V))
        return out.to(device=dev, dtype=torch.float64)
    return mm


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - i) for i in range(0, total, size)]


def hutchinson(matvec: Matvec, n: int, n_probes: int, seed: int = 0, device: str | torch.device = "cpu",
               bar=None, matmat: Matmat | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
               done: Sequence[float] = (), on_block: Callable[[np.ndarray], None] | None = None) -> TraceEstimate:
    """Mean of ``z^T H z`` over Rademacher probes ``z``; standard error from their spread.

    With ``matmat`` (e.g. `HessianOperator.mm`) the probes go ``block_size`` at a time, sharing
    each batch's forward and first backward; they are drawn one by one in the same order either
    way, so a seed gives the same probes and the same estimate up to rounding. Long runs resume:
    ``on_block(samples)`` gets the quadratic forms so far after each block, and ``done`` (the
    first forms of an interrupted run) skips those probes, drawing them without using them.
    """
    if n_probes < 1:
        raise LandscapeError(f"n_probes must be at least 1, got {n_probes}")
    if len(done) > n_probes:
        raise LandscapeError(f"{len(done)} finished probes given for a run of {n_probes}")
    check_block_size(block_size)
    gen = generator(seed, "trace")
    dev = torch.device(device)
    mm = _blocked(matvec, matmat, dev, bar)
    samples = np.empty(n_probes)
    filled = len(done)
    samples[:filled] = done
    for _ in range(filled):  # the finished probes' draws, so the rest are the same probes as before
        _rademacher((n,), gen, dev)
    for k in _chunks(n_probes - filled, block_size):
        Z = torch.stack([_rademacher((n,), gen, dev) for _ in range(k)])
        HZ = mm(Z)
        samples[filled:filled + k] = [float(z @ hz) for z, hz in zip(Z, HZ)]
        filled += k
        if on_block is not None:
            on_block(samples[:filled].copy())
    return TraceEstimate(float(samples.mean()), _stderr(samples), n_probes, samples)


@renamed_keywords(n_matvecs="n_hvps")
def hutch_plus_plus(matvec: Matvec, n: int, n_hvps: int, seed: int = 0, device: str | torch.device = "cpu",
                    bar=None, matmat: Matmat | None = None, block_size: int = DEFAULT_BLOCK_SIZE) -> TraceEstimate:
    """Hutch++ with a total budget of ``n_hvps`` products (split into thirds, at least 3).

    ``S`` (n x s) Rademacher, ``Q = orth(H S)`` (s products), ``tr(Q^T H Q)`` (s products), then
    Hutchinson on ``(I - QQ^T) H (I - QQ^T)`` with the remaining probes. The standard error is
    that of the Hutchinson part; the sketched part is exact. ``matmat``/``block_size`` as in
    `hutchinson`: every stage runs in blocks, the random draws are unchanged.
    """
    if n_hvps < 3:
        raise LandscapeError(f"Hutch++ needs a budget of at least 3 products, got {n_hvps}")
    check_block_size(block_size)
    gen = generator(seed, "trace")
    dev = torch.device(device)
    mm = _blocked(matvec, matmat, dev, bar)
    s = n_hvps // 3
    g = n_hvps - 2 * s

    def rows(V: torch.Tensor) -> torch.Tensor:
        return torch.cat([mm(B.contiguous()) for B in torch.split(V, block_size)])

    S = _rademacher((s, n), gen, dev)
    Q, _ = torch.linalg.qr(rows(S).T)                            # n x s, orthonormal columns
    QT = Q.T.contiguous()
    sketched = float(sum(float(q @ hq) for q, hq in zip(QT, rows(QT))))
    samples = np.empty(g)
    done = 0
    for k in _chunks(g, block_size):
        Z = torch.stack([_rademacher((n,), gen, dev) for _ in range(k)])
        Z = Z - (Z @ Q) @ QT
        HZ = mm(Z)
        HZ = HZ - (HZ @ Q) @ QT
        samples[done:done + k] = [float(z @ hz) for z, hz in zip(Z, HZ)]
        done += k
    rest = float(samples.mean())
    return TraceEstimate(sketched + rest, _stderr(samples), 2 * s + g, samples)
