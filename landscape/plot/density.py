"""A Hessian spectral density (SLQ, `landscape.hessian.density`) as a figure file.

Drawn on a detached `Figure` (no pyplot state, no ``matplotlib.use``), so saving a density from
a notebook leaves its inline plots alone.
"""
from __future__ import annotations

import os

import numpy as np

from .canvas import new_figure


def plot_density(grid: np.ndarray, density: np.ndarray, path: str | os.PathLike, title: str | None = None,
                 log: bool = True) -> None:
    """Write the density as a PNG: log scale by default, where the bulk near zero and the outliers
    both show (the figure style of Ghorbani et al. and PyHessian)."""
    fig = new_figure((6, 4))
    ax = fig.add_subplot()
    if log:
        floor = 1e-10 * float(np.max(density)) if np.max(density) > 0 else 1e-12
        ax.semilogy(grid, np.maximum(density, floor))
        ax.set_ylim(bottom=floor * 10)
    else:
        ax.plot(grid, density)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log scale)" if log else "density")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
