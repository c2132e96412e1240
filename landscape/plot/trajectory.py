"""An optimization path projected onto a plane, drawn over that plane's loss contours.

The path comes as coordinates in the plane (e.g. each snapshot's projection onto the first two
principal components of the trajectory, as in Li et al. section 7); the axes say how much of the
trajectory's variance each direction explains when it is given, because a path in a plane that
explains 40% of the motion is a very different picture from one that explains 95%.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ..errors import LandscapeError
from .canvas import axes_for
from .contours import contour
from .labels import pc_labels
from .levels import format_level

PATH_COLOR = "C3"


def plot_trajectory(path_x: Sequence[float], path_y: Sequence[float], *, x: Sequence[float] | None = None,
                    y: Sequence[float] | None = None, values: np.ndarray | None = None,
                    explained_variance: Sequence[float] | None = None, ax: Axes | None = None,
                    point_labels: Sequence[str | float] | None = None, label_every: int | None = None,
                    log: bool = False, vmax: float | None = None, levels: int | Sequence[float] | None = None,
                    title: str | None = None, color: str = PATH_COLOR) -> Line2D:
    """Draw the path ``(path_x[k], path_y[k])`` (over the contours of ``values`` on ``x``, ``y`` if given).

    ``explained_variance`` (fractions, or percentages) labels the axes as principal components;
    ``point_labels`` (e.g. epochs) annotate every ``label_every``-th point. The start is a circle,
    the end a star. Returns the path's `Line2D`.
    """
    px = np.asarray(path_x, dtype=np.float64).reshape(-1)
    py = np.asarray(path_y, dtype=np.float64).reshape(-1)
    if px.shape != py.shape or px.size == 0:
        raise LandscapeError(f"path_x and path_y need the same non-zero length, got {px.size} and {py.size}")
    if point_labels is not None and len(point_labels) != px.size:
        raise LandscapeError(f"point_labels has {len(point_labels)} entries for {px.size} path points")
    ax = axes_for(ax)
    xlabel, ylabel = pc_labels(explained_variance) if explained_variance is not None else (r"$\alpha$", r"$\beta$")
    if values is not None:
        if x is None or y is None:
            raise LandscapeError("drawing contours under the path needs the grid: pass x and y with values")
        contour(x, y, values, ax=ax, log=log, vmax=vmax, levels=levels, xlabel=xlabel, ylabel=ylabel)
    else:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, color="0.92", lw=0.6)
        ax.set_aspect("equal", adjustable="datalim")
    (line,) = ax.plot(px, py, "-", color=color, lw=1.5, marker="o", ms=2.5, zorder=6, label="trajectory")
    ax.plot(px[:1], py[:1], "o", ms=7, mfc="white", mec=color, mew=1.5, zorder=7, label="start")
    ax.plot(px[-1:], py[-1:], "*", ms=12, mfc=color, mec="black", mew=0.6, zorder=7, label="end")
    if point_labels is not None:
        step = label_every or max(1, px.size // 8)
        for k in range(0, px.size, step):
            text = point_labels[k]
            text = format_level(text) if isinstance(text, (float, np.floating)) else str(text)
            ax.annotate(text, (px[k], py[k]), xytext=(4, 3), textcoords="offset points", fontsize=6.5,
                        color=color, zorder=7)
    if values is not None and x is not None and y is not None:
        # the contour set limits to its grid; make sure the whole path is in view
        xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        ax.set_xlim(min(xs.min(), np.nanmin(px)), max(xs.max(), np.nanmax(px)))
        ax.set_ylim(min(ys.min(), np.nanmin(py)), max(ys.max(), np.nanmax(py)))
    ax.legend(loc="upper right", fontsize=7, frameon=True, framealpha=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return line
