"""Where a landscape is convex: the ratio |λmin / λmax| of the Hessian's extreme eigenvalues.

Li et al. (2018, section 6) map this ratio over the same 2D grid as the loss: near zero the
negative curvature is negligible next to the positive one (locally convex, shown dark); large
values mark significant non-convexity. Points where ``max_eig`` is zero or either value is
missing are left blank. A 1D surface gives a curve, and `eigenvalue_curves` shows the two
eigenvalues themselves along the line.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes

from ..errors import LandscapeError
from .canvas import axes_for, curve_arrays, note_missing
from .contours import heatmap
from .labels import QUANTITIES


def convexity_ratio(min_eig: np.ndarray, max_eig: np.ndarray) -> np.ndarray:
    """``|min_eig / max_eig|`` elementwise; NaN where undefined (``max_eig`` 0, NaN or inf)."""
    lo = np.asarray(min_eig, dtype=np.float64)
    hi = np.asarray(max_eig, dtype=np.float64)
    if lo.shape != hi.shape:
        raise LandscapeError(f"min_eig has shape {lo.shape} but max_eig has {hi.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(lo / hi)
    ratio[~np.isfinite(ratio)] = np.nan
    return ratio


def convexity_map(x: Sequence[float], y: Sequence[float] | None, min_eig: np.ndarray, max_eig: np.ndarray, *,
                  vmax: float | None = None, ax: Axes | None = None, cmap: str = "viridis",
                  title: str | None = None, xlabel: str = r"$\alpha$", ylabel: str = r"$\beta$",
                  landmarks: Sequence[tuple[tuple[float, float], str]] = ()):
    """Map (2D, ``y`` given) or curve (1D, ``y=None``) of |λmin/λmax|; returns the `QuadMesh` or `Line2D`.

    The colour scale runs from 0 to ``vmax`` (default: the largest ratio, at most 1, so the
    interesting range near convexity is not washed out by a few very non-convex points).
    """
    ratio = convexity_ratio(min_eig, max_eig)
    finite = ratio[np.isfinite(ratio)]
    top = float(vmax) if vmax is not None else (min(1.0, float(finite.max())) if finite.size else 1.0)
    top = top if top > 0 else 1.0
    label = QUANTITIES["convexity"]
    if y is None:
        ax = axes_for(ax, figsize=(5.6, 4.0))
        xs, r = curve_arrays(x, ratio, "convexity ratio")
        (line,) = ax.plot(xs, r, "-", color="C2", lw=1.8)
        ax.set_ylim(0, max(top, float(np.nanmax(r))) * 1.05 if finite.size else 1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, color="0.92", lw=0.6)
        if title:
            ax.set_title(title, fontsize=9)
        return line
    return heatmap(x, y, ratio, vmin=0.0, vmax=top, method="linear", ax=ax, cmap=cmap, label=label,
                   title=title, xlabel=xlabel, ylabel=ylabel, landmarks=landmarks)


MAX_COLOR, MIN_COLOR = "C0", "C3"


def eigenvalue_curves(x: Sequence[float], min_eig: np.ndarray, max_eig: np.ndarray, *, ax: Axes | None = None,
                      title: str | None = None, xlabel: str = r"$\alpha$",
                      done: Sequence[bool] | None = None) -> tuple[Axes, Axes]:
    """λmax (left axis, blue) and λmin (twin right axis, red) along one direction.

    Two axes because λmin is usually one or two orders of magnitude smaller than λmax: on a
    shared scale it would lie flat on zero. A dotted line marks λmin = 0 (locally convex above
    it). Returns ``(max_axes, min_axes)``, in the style of `plot_curves`.
    """
    xs, hi = curve_arrays(x, max_eig, "max_eig")
    _, lo = curve_arrays(x, min_eig, "min_eig")
    ax = axes_for(ax, figsize=(5.6, 4.0))
    (h_max,) = ax.plot(xs, hi, "-", color=MAX_COLOR, lw=1.8, label=r"$\lambda_{max}$")
    min_ax = ax.twinx()
    (h_min,) = min_ax.plot(xs, lo, "-", color=MIN_COLOR, lw=1.8, label=r"$\lambda_{min}$")
    min_ax.axhline(0.0, color=MIN_COLOR, lw=0.8, ls=":", alpha=0.7)
    for a, color, name in ((ax, MAX_COLOR, "max_eig"), (min_ax, MIN_COLOR, "min_eig")):
        lo_lim, hi_lim = a.get_ylim()
        a.set_ylim(top=hi_lim + (hi_lim - lo_lim) * 0.14)  # headroom for the legend
        a.set_ylabel(QUANTITIES[name], color=color)
        a.tick_params(axis="y", colors=color)
    ax.set_xlim(float(np.min(xs)), float(np.max(xs)))
    ax.set_xlabel(xlabel)
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(handles=[h_max, h_min], loc="upper center", fontsize=8, frameon=False, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    note_missing(min_ax, max_eig, done)
    return ax, min_ax
