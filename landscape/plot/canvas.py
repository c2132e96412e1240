"""Where figures come from and where they go.

Functions called without ``ax=`` get a new pyplot figure, so they show inline in Jupyter and in
interactive sessions (matplotlib itself falls back to Agg when there is no display; nothing here
calls ``matplotlib.use``). `render` and other file writers build a bare `Figure` with no pyplot
state at all, so batch runs neither open windows nor accumulate figures in memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import LandscapeError

FORMATS = ("png", "pdf", "svg")
DEFAULT_DPI = 150


def new_figure(figsize: tuple[float, float] = (5.6, 4.6), pyplot: bool = False) -> Figure:
    """A figure with constrained layout: a pyplot one (shown in notebooks) or a detached one (for files)."""
    if pyplot:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    return Figure(figsize=figsize, layout="constrained")


def axes_for(ax: Axes | None, projection: str | None = None, figsize: tuple[float, float] = (5.6, 4.6)) -> Axes:
    """``ax`` itself, or the axes of a new pyplot figure when ``ax`` is None."""
    if ax is not None:
        if projection == "3d" and getattr(ax, "name", "") != "3d":
            raise LandscapeError("a 3D surface needs 3D axes: fig.add_subplot(projection='3d')")
        return ax
    return new_figure(figsize, pyplot=True).add_subplot(projection=projection)


def save_figure(fig: Figure, stem: str | os.PathLike, formats: Sequence[str] = ("png",),
                dpi: int = DEFAULT_DPI) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format and return the paths (directories are made)."""
    formats = [f.lower().lstrip(".") for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise LandscapeError(f"unsupported figure format {bad[0]!r}; use one of {', '.join(FORMATS)}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, dpi=dpi, metadata=_metadata(fmt))
        paths.append(path)
    return paths


def _metadata(fmt: str) -> dict:
    # Reproducible PDFs: no creation date in the file, so an unchanged figure is an unchanged file.
    return {"CreationDate": None} if fmt == "pdf" else {}


def masked(values: np.ndarray) -> np.ma.MaskedArray:
    """NaN (not computed) and inf (diverged) entries masked, so matplotlib leaves them blank."""
    return np.ma.masked_invalid(np.asarray(values, dtype=np.float64))


def grid_arrays(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a 2D surface's shapes: ``z`` is ``(len(y), len(x))`` with ``z[j, i]`` at ``(x[i], y[j])``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    z = np.asarray(z, dtype=np.float64)
    if z.shape != (len(y), len(x)):
        hint = " (it looks transposed: rows are y, columns are x)" if z.shape == (len(x), len(y)) else ""
        raise LandscapeError(f"values have shape {z.shape} but the grid needs (len(y), len(x)) = "
                             f"({len(y)}, {len(x)}){hint}")
    if len(x) < 2 or len(y) < 2:
        raise LandscapeError(f"a 2D plot needs at least 2 points along each axis, got {len(x)} x {len(y)}")
    return x, y, z


def curve_arrays(x: np.ndarray, values: np.ndarray, name: str = "values") -> tuple[np.ndarray, np.ndarray]:
    """Check a 1D curve: ``values`` has one entry per ``x``; inf becomes NaN so lines break there."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape != x.shape:
        raise LandscapeError(f"{name} has {v.size} values for {x.size} x coordinates")
    return x, np.where(np.isfinite(v), v, np.nan)


def as_percent(acc: np.ndarray) -> np.ndarray:
    """Accuracy in percent: fractions (all finite values <= 1) are scaled by 100, percentages kept."""
    a = np.asarray(acc, dtype=np.float64)
    finite = a[np.isfinite(a)]
    return a * 100.0 if finite.size and finite.max() <= 1.0 + 1e-9 else a


def set_square_aspect(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """Equal axis scale when the spans are comparable (directions share one scale), free otherwise."""
    sx, sy = float(np.ptp(x)), float(np.ptp(y))
    if sx > 0 and sy > 0 and 0.25 <= sx / sy <= 4.0:
        ax.set_aspect("equal", adjustable="box")


def coverage_note(values: np.ndarray, done: np.ndarray | None = None) -> str:
    """``"40/99 points computed; 3 not finite (diverged)"``, or ``""`` for a complete, finite surface.

    With the surface's ``done`` mask a NaN at a computed point counts as diverged, not missing;
    without it NaN means not computed and inf means diverged.
    """
    v = np.asarray(values, dtype=np.float64)
    if done is not None and np.shape(done) == v.shape:
        done = np.asarray(done, dtype=bool)
    else:
        done = ~np.isnan(v)
    parts = []
    n_done = int(done.sum())
    if n_done == 0:
        return "no points computed yet"
    if n_done < v.size:
        parts.append(f"{n_done}/{v.size} points computed")
    bad = int((done & ~np.isfinite(v)).sum())
    if bad:
        parts.append(f"{bad} not finite (diverged)")
    return "; ".join(parts)


def note_missing(ax: Axes, values: np.ndarray, done: np.ndarray | None = None,
                 where: tuple[float, float, str, str] = (0.99, 0.01, "right", "bottom")) -> None:
    """Say on the axes how much of a half-finished (or partly diverged) surface is drawn."""
    text = coverage_note(values, done)
    if text:
        x, y, ha, va = where
        ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=7, color="0.3", zorder=8,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.75))


def add_colorbar(ax: Axes, mappable, label: str = "", extend: str | None = None, log: bool = False):
    """A colorbar exactly as tall as ``ax`` (also when the axes keep an equal aspect), labelled.

    It lives in an inset of ``ax``, so panels composed by the caller keep one colorbar each.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator

    from .levels import format_level, log_tick_values

    cax = ax.inset_axes([1.03, 0.0, 0.045, 1.0])
    kwargs = {} if extend is None else {"extend": extend}
    cb = ax.figure.colorbar(mappable, cax=cax, label=label, **kwargs)
    norm = getattr(mappable, "norm", None)
    if log and norm is not None and norm.vmin is not None and 0 < norm.vmin < norm.vmax:
        cb.ax.yaxis.set_major_locator(FixedLocator(log_tick_values(norm.vmin, norm.vmax)))
        cb.ax.yaxis.set_minor_locator(LogLocator(subs="auto"))
    elif log:
        cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_level(v)))
    cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    return cb
