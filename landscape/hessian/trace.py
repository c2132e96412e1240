"""Hessian trace by Hutchinson's estimator (with a standard error) and by Hutch++.

A fixed number of probes, never "until the estimate stops moving": a tolerance rule stops on
lucky streaks and biases the estimate (GUIDE.md section 6). The spread of the probes gives a
standard error instead. Hutch++ (Meyer, Musco, Musco, Woodruff 2021) spends a third of the same
product budget on a sketch ``Q`` of the dominant subspace, whose trace ``tr(Q^T H Q)`` is exact,
and Hutchinson's estimator only on the deflated remainder: a Hessian's few large outliers stop
dominating the variance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LandscapeError
from .lanczos import Matvec
from .rng import generator


@dataclass
class TraceEstimate:
    value: float
    stderr: float
    n_matvecs: int
    samples: np.ndarray  # the per-probe quadratic forms of the stochastic part


def _rademacher(shape: tuple[int, ...], gen: torch.Generator, dev: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=gen, dtype=torch.float64) * 2 - 1).to(dev)


def _stderr(samples: np.ndarray) -> float:
    return float(samples.std(ddof=1) / np.sqrt(len(samples))) if len(samples) > 1 else float("nan")


def hutchinson(matvec: Matvec, n: int, n_probes: int, seed: int = 0, device: str | torch.device = "cpu",
               bar=None) -> TraceEstimate:
    """Mean of ``z^T H z`` over Rademacher probes ``z``; standard error from their spread."""
    if n_probes < 1:
        raise LandscapeError(f"n_probes must be at least 1, got {n_probes}")
    gen = generator(seed, "trace")
    dev = torch.device(device)
    samples = np.empty(n_probes)
    for i in range(n_probes):
        z = _rademacher((n,), gen, dev)
        samples[i] = float(z @ matvec(z).to(device=dev, dtype=torch.float64))
        if bar is not None:
            bar.update(1)
    return TraceEstimate(float(samples.mean()), _stderr(samples), n_probes, samples)


def hutch_plus_plus(matvec: Matvec, n: int, n_matvecs: int, seed: int = 0, device: str | torch.device = "cpu",
                    bar=None) -> TraceEstimate:
    """Hutch++ with a total budget of ``n_matvecs`` products (split into thirds, at least 3).

    ``S`` (n x s) Rademacher, ``Q = orth(H S)`` (s products), ``tr(Q^T H Q)`` (s products), then
    Hutchinson on ``(I - QQ^T) H (I - QQ^T)`` with the remaining probes. The standard error is
    that of the Hutchinson part; the sketched part is exact.
    """
    if n_matvecs < 3:
        raise LandscapeError(f"Hutch++ needs a budget of at least 3 products, got {n_matvecs}")
    gen = generator(seed, "trace")
    dev = torch.device(device)
    s = n_matvecs // 3
    g = n_matvecs - 2 * s

    def mv(v: torch.Tensor) -> torch.Tensor:
        out = matvec(v).to(device=dev, dtype=torch.float64)
        if bar is not None:
            bar.update(1)
        return out

    S = _rademacher((s, n), gen, dev)
    HS = torch.stack([mv(v) for v in S], dim=1)                 # n x s
    Q, _ = torch.linalg.qr(HS)                                   # n x s, orthonormal columns
    sketched = float(sum(float(q @ mv(q.contiguous())) for q in Q.T))
    samples = np.empty(g)
    for i in range(g):
        z = _rademacher((n,), gen, dev)
        z = z - Q @ (Q.T @ z)
        hz = mv(z)
        hz = hz - Q @ (Q.T @ hz)
        samples[i] = float(z @ hz)
    rest = float(samples.mean())
    return TraceEstimate(sketched + rest, _stderr(samples), 2 * s + g, samples)
