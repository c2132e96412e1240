"""2D landscapes seen from above: labelled contour lines, filled contours and heatmaps.

All three take ``(x, y, values)`` with ``values[j, i]`` at ``(x[i], y[j])`` (the surface file's
layout, also matplotlib's), mask NaN and inf so a half-finished surface draws what it has, and
share `contour_levels` so the same array gets the same levels and colours in every view.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.contour import QuadContourSet

from .canvas import add_colorbar, axes_for, grid_arrays, masked, note_missing, set_square_aspect
from .levels import Levels, contour_levels, finite_values, format_level

MISSING_COLOR = "0.86"  # what shows through where a surface has no value yet


def _levels(values: np.ndarray, levels: int | Sequence[float] | None, method: str, log: bool,
            vmin: float | None, vmax: float | None) -> Levels:
    if levels is None or isinstance(levels, (int, np.integer)):
        return contour_levels(values, int(levels or 12), method=method, log=log, vmin=vmin, vmax=vmax)
    return contour_levels(values, levels=levels, log=log)


def _finish(ax: Axes, x: np.ndarray, y: np.ndarray, values: np.ndarray, title: str | None, xlabel: str,
            ylabel: str, landmarks: Sequence[tuple[tuple[float, float], str]], done: np.ndarray | None,
            clip: bool = True) -> None:
    if clip:  # contours end at the outermost grid points; heatmap cells reach half a cell beyond
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(y.min(), y.max())
    set_square_aspect(ax, x, y)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    draw_landmarks(ax, landmarks, x, y)
    note_missing(ax, values, done)


def draw_landmarks(ax: Axes, landmarks: Sequence[tuple[tuple[float, float], str]], x: np.ndarray,
                   y: np.ndarray) -> None:
    """Mark named points (the checkpoint at the origin, the ends of an interpolation) inside the grid."""
    inside = [((px, py), label) for (px, py), label in landmarks
              if x.min() <= px <= x.max() and y.min() <= py <= y.max()]
    for (px, py), label in inside:
        ax.plot([px], [py], marker="*", ms=10, mfc="white", mec="black", mew=0.8, ls="none", zorder=5)
        if len(inside) > 1:
            ax.annotate(label, (px, py), xytext=(5, 5), textcoords="offset points", fontsize=7, zorder=5,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75))


def shade_missing(ax: Axes, x: np.ndarray, y: np.ndarray, values: np.ndarray) -> None:
    """Grey cells where a line-contour plot has no values, so a hole does not read as a flat region."""
    missing = ~np.isfinite(values)
    if missing.any():
        ax.pcolormesh(x, y, np.ma.masked_where(~missing, np.ones_like(values)), shading="nearest",
                      cmap=mcolors.ListedColormap([MISSING_COLOR]), rasterized=True, zorder=0)


def contour(x: Sequence[float], y: Sequence[float], values: np.ndarray, *,
            levels: int | Sequence[float] | None = None, method: str = "auto", log: bool = False,
            vmin: float | None = None, vmax: float | None = None, ax: Axes | None = None,
            cmap: str = "viridis", labels: bool = True, colorbar: bool = False, label: str = "",
            title: str | None = None, xlabel: str = r"$\alpha$", ylabel: str = r"$\beta$",
            landmarks: Sequence[tuple[tuple[float, float], str]] = (),
            done: np.ndarray | None = None) -> QuadContourSet:
    """Contour lines with inline level labels (Li et al.'s 2D view); returns the `QuadContourSet`.

    ``levels`` is a count or explicit values; by default they are chosen by `contour_levels`
    (log-spaced over a wide loss range, so the basin gets lines too).
    """
    x, y, z = grid_arrays(x, y, values)
    ax = axes_for(ax)
    lv = _levels(z, levels, method, log, vmin, vmax)
    zm = masked(z)
    shade_missing(ax, x, y, z)
    if finite_values(z).size >= 4:
        cs = ax.contour(x, y, zm, levels=lv.values, cmap=cmap, norm=lv.norm, linewidths=1.0)
        if labels and len(cs.levels):
            ax.clabel(cs, inline=True, fontsize=6.5, fmt=format_level)
    else:  # nothing (or too little) to draw yet: an empty set keeps the return type
        cs = ax.contour(x, y, np.ma.masked_all(z.shape), levels=lv.values)
    if colorbar:
        add_colorbar(ax, cs, label, log=lv.scale == "log")
    _finish(ax, x, y, z, title, xlabel, ylabel, landmarks, done)
    return cs


def contourf(x: Sequence[float], y: Sequence[float], values: np.ndarray, *,
             levels: int | Sequence[float] | None = None, method: str = "auto", log: bool = False,
             vmin: float | None = None, vmax: float | None = None, ax: Axes | None = None,
             cmap: str = "viridis", colorbar: bool = True, label: str = "", lines: bool = True,
             title: str | None = None, xlabel: str = r"$\alpha$", ylabel: str = r"$\beta$",
             landmarks: Sequence[tuple[tuple[float, float], str]] = (),
             done: np.ndarray | None = None) -> QuadContourSet:
    """Filled contours with a colorbar (thin level lines on top with ``lines``); returns the filled set.

    Values beyond ``vmin``/``vmax`` take the end colours (the colorbar shows an arrow for them);
    regions with no value are left grey.
    """
    x, y, z = grid_arrays(x, y, values)
    ax = axes_for(ax)
    ax.set_facecolor(MISSING_COLOR)
    lv = _levels(z, levels, method, log, vmin, vmax)
    zm = masked(z)
    if finite_values(z).size >= 4:
        cs = ax.contourf(x, y, zm, levels=lv.values, cmap=cmap, norm=lv.norm, extend=lv.extend)
        if lines:
            ax.contour(x, y, zm, levels=lv.values, colors="k", linewidths=0.3, alpha=0.45)
    else:
        cs = ax.contourf(x, y, np.ma.masked_all(z.shape), levels=lv.values, cmap=cmap, norm=lv.norm)
    if colorbar:
        add_colorbar(ax, cs, label, log=lv.scale == "log")
    _finish(ax, x, y, z, title, xlabel, ylabel, landmarks, done)
    return cs


def heatmap(x: Sequence[float], y: Sequence[float], values: np.ndarray, *, log: bool = False,
            vmin: float | None = None, vmax: float | None = None, method: str = "auto",
            ax: Axes | None = None, cmap: str = "viridis", colorbar: bool = True, label: str = "",
            title: str | None = None, xlabel: str = r"$\alpha$", ylabel: str = r"$\beta$",
            landmarks: Sequence[tuple[tuple[float, float], str]] = (),
            done: np.ndarray | None = None) -> QuadMesh:
    """One cell per grid point, centred on it (any grid spacing); returns the `QuadMesh`.

    The colour scale is continuous: logarithmic when ``log`` is set or the values span more than
    a factor of 30 (``method="linear"`` turns that off), capped at ``vmin``/``vmax``.
    """
    x, y, z = grid_arrays(x, y, values)
    ax = axes_for(ax)
    ax.set_facecolor(MISSING_COLOR)
    lv = contour_levels(z, method="linear" if method == "quantile" else method, log=log, vmin=vmin, vmax=vmax)
    finite = finite_values(z)
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if lv.scale == "log":
        norm = mcolors.LogNorm(max(lo, lv.values[0]) if lo > 0 else lv.values[0], hi)
    else:
        norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1.0)
    mesh = ax.pcolormesh(x, y, masked(z), shading="nearest", cmap=cmap, norm=norm, rasterized=True)
    if colorbar:
        extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
            (bool(finite.size and finite.min() < norm.vmin), bool(finite.size and finite.max() > norm.vmax))]
        add_colorbar(ax, mesh, label, extend=extend, log=isinstance(norm, mcolors.LogNorm))
    _finish(ax, x, y, z, title, xlabel, ylabel, landmarks, done, clip=False)
    return mesh
