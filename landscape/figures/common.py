"""Small pieces several recipes use: panel titles, a 1D sharpness proxy, mean and spread over seeds."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np


def pct(fraction: float | None, digits: int = 2) -> str:
    return "-" if fraction is None or not math.isfinite(fraction) else f"{100 * fraction:.{digits}f}%"


def final_test_error(record_or_meta: Mapping) -> float:
    """Final test error of a sweep record (``final``) or a checkpoint meta."""
    final = record_or_meta.get("final", record_or_meta)
    if final.get("test_error") is not None:
        return float(final["test_error"])
    acc = final.get("test_acc")
    return math.nan if acc is None else 1.0 - float(acc)


def run_title(weight_decay: float, batch_size: int, test_err: float) -> str:
    """Li et al.'s panel titles: weight decay, batch size, test error."""
    return f"WD={weight_decay:g}, BS={batch_size}, test error {pct(test_err)}"


def loss_rise(x: np.ndarray, loss: np.ndarray, alpha: float) -> float:
    """Mean increase of ``loss`` from ``x = 0`` to ``x = -alpha`` and ``+alpha`` (linear interpolation).

    A one-number summary of a 1D filter-normalized curve: the wider the basin, the smaller it is.
    """
    x, loss = np.asarray(x, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    centre = float(np.interp(0.0, x, loss))
    return float(np.mean([np.interp(-alpha, x, loss), np.interp(alpha, x, loss)]) - centre)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else math.nan)


def fmt_mean_sd(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    mean, sd = mean_sd([scale * v for v in values])
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.{digits}g}" if not math.isfinite(sd) else f"{mean:.{digits}g} ± {sd:.2g}"


def seeds_of(records: Mapping[tuple, Any], batch_size: int, weight_decay: float) -> list[Any]:
    """The study records of every seed at one (batch size, weight decay)."""
    return [r for (b, w, _), r in sorted(records.items()) if b == batch_size and w == weight_decay]


def plain_log_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (``30``, ``0.2``) instead of ``3 x 10^1``."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def log_axes(ax, xlabel: str, ylabel: str, legend: dict | None = None) -> None:
    """Both axes logarithmic with plain tick labels, labelled, a light grid and a frameless legend."""
    for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        scale("log")
        plain_log_ticks(axis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="0.92")
    ax.legend(frameon=False, **(legend or {"fontsize": 8}))
