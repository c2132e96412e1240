"""1D landscapes: loss and accuracy along one direction, and several checkpoints compared.

Loss goes on the left axis (blue) and accuracy on a twin right axis (red), train solid and test
dashed, as in Li et al.'s 1D figures, so one picture shows both the basin's width and where
accuracy collapses. NaN points (not computed yet) and inf (diverged) leave gaps in the lines.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
from matplotlib.axes import Axes

from ..errors import LandscapeError
from .canvas import as_percent, axes_for, curve_arrays, new_figure, note_missing, save_figure
from .labels import quantity_label

LOSS_COLOR, ACC_COLOR = "C0", "C3"
STYLES = {"train": "-", "test": "--"}


class CurveAxes(NamedTuple):
    """The loss axes and the twin accuracy axes (None when no accuracy was drawn)."""

    loss: Axes
    acc: Axes | None


def plot_curves(x: Sequence[float], *, train_loss: Sequence[float] | None = None,
                test_loss: Sequence[float] | None = None, train_acc: Sequence[float] | None = None,
                test_acc: Sequence[float] | None = None, log: bool = False, vmax: float | None = None,
                ax: Axes | None = None, title: str | None = None, xlabel: str = r"$\alpha$",
                landmarks: Sequence[tuple[float, str]] = (), done: Sequence[bool] | None = None) -> CurveAxes:
    """Loss (left axis, optionally log) and accuracy (right axis, percent) along one direction.

    Accuracy given as fractions is shown in percent. ``vmax`` caps the loss axis; ``landmarks``
    are ``(x, label)`` pairs marked with dotted vertical lines (e.g. the two checkpoints of an
    interpolation). ``done`` (the surface's mask) tells points not computed yet from diverged ones
    in the note drawn on a partial curve.
    """
    losses = {k: v for k, v in (("train", train_loss), ("test", test_loss)) if v is not None}
    accs = {k: v for k, v in (("train", train_acc), ("test", test_acc)) if v is not None}
    if not losses and not accs:
        raise LandscapeError("plot_curves needs at least one of train_loss, test_loss, train_acc, test_acc")
    ax = axes_for(ax, figsize=(5.6, 4.0))
    handles = []
    loss_ax = ax
    for split, values in losses.items():
        xs, v = curve_arrays(x, values, f"{split}_loss")
        (line,) = loss_ax.plot(xs, v, STYLES[split], color=LOSS_COLOR, lw=1.8, label=f"{split} loss")
        handles.append(line)
    acc_ax = None
    if accs:
        acc_ax = loss_ax.twinx() if losses else loss_ax
        for split, values in accs.items():
            xs, v = curve_arrays(x, values, f"{split}_acc")
            (line,) = acc_ax.plot(xs, as_percent(v), STYLES[split], color=ACC_COLOR, lw=1.4,
                                  label=f"{split} accuracy")
            handles.append(line)
        acc_ax.set_ylim(-2, 116 if losses else 102)  # headroom for the one-row legend
        acc_ax.set_yticks(np.arange(0, 101, 20))
        acc_ax.set_ylabel("accuracy (%)", color=ACC_COLOR)
        acc_ax.tick_params(axis="y", colors=ACC_COLOR)
    if losses:
        if log:
            loss_ax.set_yscale("log", nonpositive="mask")
        if vmax is not None:
            loss_ax.set_ylim(top=vmax)
            if not log:
                loss_ax.set_ylim(bottom=min(0.0, loss_ax.get_ylim()[0]))
        _headroom(loss_ax, log)
        loss_ax.set_ylabel("loss" + (" (log scale)" if log else ""), color=LOSS_COLOR)
        loss_ax.tick_params(axis="y", colors=LOSS_COLOR)
    xs = np.asarray(x, dtype=np.float64)
    loss_ax.set_xlim(float(np.min(xs)), float(np.max(xs)))
    for pos, label in landmarks:
        if xs.min() <= pos <= xs.max():
            loss_ax.axvline(pos, color="0.5", lw=0.8, ls=":", zorder=0)
            loss_ax.annotate(label, (pos, 0.0), xycoords=("data", "axes fraction"), xytext=(-2, 3),
                             textcoords="offset points", ha="right", va="bottom", rotation=90, fontsize=7,
                             color="0.35")
    loss_ax.set_xlabel(xlabel)
    loss_ax.grid(True, color="0.92", lw=0.6)
    loss_ax.set_axisbelow(True)
    loss_ax.legend(handles=handles, loc="upper center", fontsize=7.5, frameon=False, ncol=len(handles),
                   handlelength=1.8, columnspacing=1.0)
    if title:
        loss_ax.set_title(title, fontsize=9)
    first = next(iter(losses.values())) if losses else next(iter(accs.values()))
    note_missing(acc_ax if acc_ax is not None else loss_ax, first, done)  # on the top axes, so lines pass under it
    return CurveAxes(loss_ax, acc_ax)


def _headroom(ax: Axes, log: bool, share: float = 0.12) -> None:
    """Raise the top of ``ax`` so the top ``share`` of the height is free for the legend."""
    lo, hi = ax.get_ylim()
    if log:
        lo, hi = np.log10(lo), np.log10(hi)
        ax.set_ylim(top=10 ** (hi + (hi - lo) * share / (1 - share)))
    else:
        ax.set_ylim(top=hi + (hi - lo) * share / (1 - share))


def _items(curves: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    items = list(curves.items()) if isinstance(curves, Mapping) else list(curves)
    if not items:
        raise LandscapeError("compare_curves needs at least one (label, curve) pair")
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise LandscapeError("compare_curves takes (label, surface) or (label, (x, values)) pairs")
    return items


def compare_curves(curves: Mapping[str, Any] | Sequence[tuple[str, Any]], out: str | os.PathLike | None = None, *,
                   keys: Sequence[str] = ("train_loss", "test_loss"), log: bool = False,
                   vmax: float | None = None, title: str | None = None, xlabel: str = r"$\alpha$",
                   ylabel: str | None = None, ax: Axes | None = None, formats: Sequence[str] = ("png",),
                   dpi: int = 150) -> Axes | list[Any]:
    """Several 1D curves on one axis, one colour per curve (e.g. small- vs large-batch checkpoints).

    Each curve is ``(label, surface)`` for a 1D `Surface` (every one of ``keys`` it holds is drawn,
    train solid, test dashed) or ``(label, (x, values))``. Returns the axes; with ``out`` (a path
    without extension) the figure is saved there instead and the written paths are returned.
    """
    items = _items(curves)
    if out is not None and ax is None:  # a file only: no pyplot figure left behind
        ax = new_figure((5.6, 4.0)).add_subplot()
    ax = axes_for(ax, figsize=(5.6, 4.0))
    x_lo, x_hi = np.inf, -np.inf
    drawn_keys: list[str] = []
    for k, (label, curve) in enumerate(items):
        color = f"C{k % 10}"
        if hasattr(curve, "arrays") and hasattr(curve, "x"):
            if getattr(curve, "y", None) is not None:
                raise LandscapeError(f"curve {label!r} is a 2D surface; compare_curves draws 1D surfaces")
            present = [key for key in keys if key in curve.arrays]
            if not present:
                raise LandscapeError(f"curve {label!r} has none of {list(keys)}; it has {sorted(curve.arrays)}")
            series = [(key, curve.x, curve.arrays[key]) for key in present]
        else:
            try:
                cx, cv = curve
            except (TypeError, ValueError):
                raise LandscapeError(f"curve {label!r} must be a 1D surface or an (x, values) pair") from None
            series = [(None, cx, cv)]
        for n, (key, cx, cv) in enumerate(series):
            xs, v = curve_arrays(cx, cv, label)
            if key is not None and key.endswith("_acc"):
                v = as_percent(v)
            style = STYLES.get(key.split("_")[0], "-") if key else "-"
            ax.plot(xs, v, style, color=color, lw=1.8 if n == 0 else 1.3,
                    label=label if len(series) == 1 else f"{label}, {quantity_label(key)}")
            if key and key not in drawn_keys:
                drawn_keys.append(key)
            x_lo, x_hi = min(x_lo, float(np.nanmin(xs))), max(x_hi, float(np.nanmax(xs)))
    if log:
        ax.set_yscale("log", nonpositive="mask")
    if vmax is not None:
        ax.set_ylim(top=vmax)
    if np.isfinite(x_lo) and x_hi > x_lo:
        ax.set_xlim(x_lo, x_hi)
    if ylabel is None:
        if drawn_keys and all(k.endswith("loss") for k in drawn_keys):
            ylabel = "loss"
        else:
            ylabel = quantity_label(drawn_keys[0]) if len(drawn_keys) == 1 else "value"
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    ax.set_xlabel(xlabel)
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    if out is not None:
        return save_figure(ax.figure, out, formats, dpi)
    return ax
