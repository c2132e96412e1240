"""Contour levels and colour norms that resolve the basin, not just the walls.

Loss surfaces rise by orders of magnitude from the minimum to the edge of the grid, so evenly
spaced levels over the full range put every line near the walls and leave the basin blank.
``contour_levels`` picks log-spaced "nice" levels when the values span more than a decade and a
half (and are positive), evenly spaced nice levels otherwise, or equal-area (quantile) levels on
request; a ``vmax`` caps the range as Li et al.'s plotters did. The matching colour norm comes
with the levels so filled contours, heatmaps and colorbars all agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.ticker import MaxNLocator

from ..errors import LandscapeError

# Mantissa sets per decade, coarse to fine; the first that gives enough levels is used.
_LOG_MANTISSAS = ([1.0], [1.0, 3.0], [1.0, 2.0, 5.0], [1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
                  [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0])
METHODS = ("auto", "linear", "log", "quantile")


@dataclass(frozen=True)
class Levels:
    """Contour levels, the colour norm that matches them, and how values beyond them are drawn."""

    values: np.ndarray
    norm: mcolors.Normalize
    extend: str  # "neither", "min", "max" or "both", as contourf and colorbar take it
    scale: str   # "linear", "log" or "quantile"


def finite_values(values: np.ndarray) -> np.ndarray:
    """The finite entries of ``values`` as a flat float array (NaN = not computed, inf = diverged)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _round_sig(a: np.ndarray, digits: int = 2) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    out = np.zeros_like(a)
    nz = a != 0
    mag = np.floor(np.log10(np.abs(a[nz])))
    scale = 10.0 ** (digits - 1 - mag)
    out[nz] = np.round(a[nz] * scale) / scale
    return out


def _log_levels(lo: float, hi: float, n: int) -> np.ndarray:
    """Nice log-spaced levels (1-2-5 style) from the one at or below ``lo`` to the one at or above ``hi``."""
    d0, d1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    best = None
    for mantissas in _LOG_MANTISSAS:
        cand = np.array([m * 10.0 ** d for d in range(d0 - 1, d1 + 1) for m in mantissas])
        below = cand[cand <= lo * (1 + 1e-12)]
        above = cand[cand >= hi * (1 - 1e-12)]
        start = below.max() if len(below) else cand.min()
        stop = above.min() if len(above) else cand.max()
        best = cand[(cand >= start) & (cand <= stop)]
        if len(best) >= n:
            break
    return best


def _linear_levels(lo: float, hi: float, n: int) -> np.ndarray:
    """Nice evenly spaced levels from the one at or below ``lo`` to the one at or above ``hi``."""
    values = MaxNLocator(nbins=max(n, 2), steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    below, above = values[values <= lo], values[values >= hi]
    start = below.max() if len(below) else values.min()
    stop = above.min() if len(above) else values.max()
    return values[(values >= start) & (values <= stop)]


def _quantile_levels(finite: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """Levels enclosing equal shares of the grid: even visual spacing whatever the growth rate."""
    inside = finite[(finite >= lo) & (finite <= hi)]
    q = np.quantile(inside, np.linspace(0.0, 1.0, n + 1))
    q = _round_sig(q, 3)
    q[0], q[-1] = min(q[0], lo), max(q[-1], hi)
    return np.unique(q)


def contour_levels(values: np.ndarray, n: int = 12, *, method: str = "auto", log: bool = False,
                   vmin: float | None = None, vmax: float | None = None,
                   levels: Sequence[float] | None = None) -> Levels:
    """Levels (and colour norm) for drawing ``values``; NaN and inf entries are ignored.

    ``method``: ``"auto"`` is log-spaced when ``log`` is set or when the positive values span more
    than a factor of 30, else evenly spaced; ``"linear"``, ``"log"`` and ``"quantile"`` force one.
    ``vmin``/``vmax`` bound the range (values beyond are drawn in the end colours, ``extend``);
    explicit ``levels`` are used as given.
    """
    if method not in METHODS:
        raise LandscapeError(f"unknown level method {method!r}; use one of {', '.join(METHODS)}")
    if n < 2:
        raise LandscapeError(f"need at least 2 contour levels, got n={n}")
    finite = finite_values(values)
    if levels is not None:
        lv = np.unique(np.asarray(levels, dtype=np.float64))
        if lv.size < 2 or not np.all(np.isfinite(lv)):
            raise LandscapeError("explicit levels need at least two finite values")
        scale = "log" if (log and lv[0] > 0) else "linear"
        norm = mcolors.LogNorm(lv[0], lv[-1]) if scale == "log" else mcolors.Normalize(lv[0], lv[-1])
        return Levels(lv, norm, _extend(finite, lv[0], lv[-1]), scale)
    if finite.size == 0:  # nothing computed yet: a harmless placeholder range
        lv = np.array([0.0, 1.0])
        return Levels(lv, mcolors.Normalize(0.0, 1.0), "neither", "linear")
    data_lo, data_hi = float(finite.min()), float(finite.max())
    lo = data_lo if vmin is None else float(vmin)
    hi = data_hi if vmax is None else float(vmax)
    if vmax is not None and vmin is None and lo >= hi:
        raise LandscapeError(f"vmax={vmax:g} is not above the smallest value {lo:g}; pick a larger --vmax")
    if lo >= hi:
        if vmin is not None and vmax is not None:
            raise LandscapeError(f"vmin={vmin:g} must be below vmax={vmax:g}")
        pad = max(abs(lo) * 1e-3, 1e-12)  # a constant surface: one band around its value
        lo, hi = lo - pad, hi + pad
    positive_lo = lo if lo > 0 else (float(finite[finite > 0].min()) if np.any(finite > 0) else None)
    if method == "auto":
        wide = positive_lo is not None and hi / positive_lo > 30.0
        method = "log" if (log or wide) and positive_lo is not None and positive_lo < hi else "linear"
    if method == "log":
        if positive_lo is None or positive_lo >= hi:
            raise LandscapeError("log-spaced levels need positive values; use linear levels for this array")
        lv = _log_levels(positive_lo, hi, n)
        norm = mcolors.LogNorm(lv[0], lv[-1])
        return Levels(lv, norm, _extend(finite, lv[0], lv[-1]), "log")
    if method == "quantile":
        lv = _quantile_levels(finite, lo, hi, n)
        if lv.size < 2:
            lv = np.array([lo, hi])
        norm = mcolors.BoundaryNorm(lv, ncolors=256, extend=_extend(finite, lv[0], lv[-1]))
        return Levels(lv, norm, _extend(finite, lv[0], lv[-1]), "quantile")
    lv = _linear_levels(lo, hi, n)
    return Levels(lv, mcolors.Normalize(lv[0], lv[-1]), _extend(finite, lv[0], lv[-1]), "linear")


def _extend(finite: np.ndarray, lo: float, hi: float) -> str:
    below = finite.size and finite.min() < lo
    above = finite.size and finite.max() > hi
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (bool(below), bool(above))]


def format_level(value: float) -> str:
    """Short label for a contour level: 3 significant digits, no trailing zeros."""
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e")


def log_tick_values(lo: float, hi: float, max_ticks: int = 10) -> list[float]:
    """Tick values for a log axis from ``lo`` to ``hi`` (both > 0) that always gives some labels.

    1, 2 and 5 times powers of ten while they fit in ``max_ticks``, then powers of ten (every
    n-th over many decades: matplotlib's LogLocator leaves a colorbar spanning 11 decades bare),
    and evenly spaced values in log inside a range too narrow to hold two of those.
    """
    a, b = math.log10(lo), math.log10(hi)
    for mantissas in ((1, 2, 5), (1,)):
        vals = [math.log10(m) + k for k in range(math.floor(a) - 1, math.ceil(b) + 1) for m in mantissas]
        vals = [v for v in vals if a - 1e-9 <= v <= b + 1e-9]
        if 2 <= len(vals) <= max_ticks:
            return [10 ** v for v in vals]
    if len(vals) > max_ticks:
        return [10 ** v for v in vals[::math.ceil(len(vals) / max_ticks)]]
    return [float(v) for v in np.logspace(a, b, 5)]

