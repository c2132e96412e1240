"""Figures of loss landscapes: 1D curves, 2D contours and heatmaps, 3D surfaces, ParaView export.

`render` draws everything appropriate for a surface file (or `Surface`) and returns the written
paths; the building blocks take plain arrays and an optional ``ax=`` so paper figures can compose
panels. 2D values are ``values[j, i]`` at ``(x[i], y[j])``, the surface file's layout; NaN (not
computed yet) and inf (diverged) are masked everywhere, so a half-finished surface renders.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import LandscapeError
from .canvas import FORMATS, as_percent, new_figure, save_figure
from .contours import contour, contourf, heatmap
from .convexity import convexity_map, convexity_ratio, eigenvalue_curves
from .curves import CurveAxes, compare_curves, plot_curves
from .labels import describe_surface, explained_variance_from, is_accuracy, is_loss, quantity_label
from .levels import Levels, contour_levels
from .surface3d import surface3d
from .trajectory import plot_trajectory
from .vtp import write_vtp

__all__ = ["render", "KINDS", "plot_curves", "compare_curves", "CurveAxes", "contour", "contourf", "heatmap",
           "surface3d", "write_vtp", "plot_trajectory", "convexity_map", "convexity_ratio", "eigenvalue_curves",
           "contour_levels", "Levels", "describe_surface", "save_figure"]

KINDS = ("curves", "contour", "contourf", "heatmap", "surface3d", "vtp", "convexity", "trajectory")
STANDARD = ("train_loss", "test_loss", "train_acc", "test_acc")
_AUTO_2D = {"loss": ("contour", "contourf", "heatmap", "surface3d"), "acc": ("contour", "contourf")}
_WIDTH = 5.6  # inches: a figure that reads at one column of a two-column paper page


def _as_surface(surface: Any):
    if isinstance(surface, (str, os.PathLike)):
        from ..surface import load_surface

        return load_surface(surface)
    if not all(hasattr(surface, a) for a in ("x", "y", "arrays")):
        raise LandscapeError(f"render takes a surface file path or a Surface, got {type(surface).__name__}")
    return surface


def _kinds(kinds: Sequence[str] | str) -> list[str]:
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    bad = [k for k in kinds if k not in KINDS + ("auto", "all")]
    if bad:
        raise LandscapeError(f"unknown figure kind {bad[0]!r}; use auto, all or any of {', '.join(KINDS)}")
    return kinds


def _figsize_2d(x: np.ndarray, y: np.ndarray, colorbar: bool) -> tuple[float, float]:
    """Tall enough for the axes at their equal aspect, plus room for a two-line title."""
    sx, sy = float(np.ptp(x)), float(np.ptp(y))
    aspect = sy / sx if sx > 0 and sy > 0 and 0.25 <= sy / sx <= 4.0 else 0.8
    axes_width = _WIDTH - (1.5 if colorbar else 0.8)
    return _WIDTH, float(np.clip(axes_width * aspect, 2.2, 7.0) + 1.1)


def render(surface: Any, out_dir: str | os.PathLike | None = None, kinds: Sequence[str] | str = ("auto",),
           formats: Sequence[str] = ("png",), log: bool = False, vmax: float | None = None,
           names: Sequence[str] | None = None, levels: int | Sequence[float] | None = None,
           method: str = "auto", dpi: int = 150, prefix: str | None = None,
           trajectory: tuple[Sequence[float], Sequence[float]] | None = None,
           explained_variance: Sequence[float] | None = None) -> list[Path]:
    """Draw a 1D or 2D surface (file path or `Surface`) into ``out_dir``; return the written paths.

    ``kinds="auto"``: a 1D surface gets loss-and-accuracy curves, a 2D one gets contour lines,
    filled contours, a heatmap and a 3D view of each loss and contours of each accuracy; both get
    a convexity map when ``min_eig``/``max_eig`` are present (a 1D one also the two eigenvalues'
    curves, ``<prefix>_eigenvalues``) and the path when a trajectory is
    given (``trajectory=(xs, ys)``, or ``trajectory_x``/``trajectory_y`` attributes). ``"all"``
    adds ``vtp`` (ParaView) files and every view of every array. ``log`` and ``vmax`` apply to
    losses. Files are named ``<prefix>_<array>_<kind>.<format>`` with ``prefix`` the surface
    file's stem; ``out_dir`` defaults to the surface file's folder.
    """
    surface = _as_surface(surface)
    kinds = _kinds(kinds)
    formats = tuple(formats)
    for fmt in formats:
        if fmt.lower().lstrip(".") not in FORMATS:
            raise LandscapeError(f"unsupported figure format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = getattr(surface, "path", None)
    out_dir = Path(out_dir) if out_dir is not None else (Path(path).parent if path else Path("."))
    prefix = prefix or (Path(path).stem if path else "surface")
    attrs = dict(getattr(surface, "attrs", None) or {})
    text = describe_surface(attrs)
    x = np.asarray(surface.x, dtype=np.float64)
    y = None if surface.y is None else np.asarray(surface.y, dtype=np.float64)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in surface.arrays.items()}
    if names is None:
        # an accuracy that is NaN everywhere (regression targets) is skipped; a loss not computed yet
        # is still drawn, as an empty frame that says so
        names = [n for n in STANDARD if n in arrays and (np.isfinite(arrays[n]).any() or is_loss(n))]
    else:
        missing = [n for n in names if n not in arrays]
        if missing:
            raise LandscapeError(f"the surface has no {missing[0]!r}; it has {', '.join(sorted(arrays))}")
        names = list(names)
    if not names and not any(k in kinds for k in ("convexity", "trajectory")) and \
            not ("min_eig" in arrays and "max_eig" in arrays):
        raise LandscapeError(f"nothing to draw: the surface has no train/test loss or accuracy (it has "
                             f"{', '.join(sorted(arrays)) or 'no arrays'}); choose arrays with names=")
    if trajectory is None and "trajectory_x" in attrs and "trajectory_y" in attrs:
        trajectory = (_attr_list(attrs["trajectory_x"]), _attr_list(attrs["trajectory_y"]))
    if explained_variance is None:
        explained_variance = explained_variance_from(attrs)
    shape = (len(x),) if y is None else (len(y), len(x))
    done = getattr(surface, "done", None)  # tells "not computed" from "diverged" in the coverage notes
    done = np.asarray(done, dtype=bool).reshape(shape) if done is not None and np.size(done) == np.prod(shape) \
        else None
    has_eigs = "min_eig" in arrays and "max_eig" in arrays
    written: list[Path] = []

    def wants(kind: str, auto: bool) -> bool:
        return kind in kinds or "all" in kinds or ("auto" in kinds and auto)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No contour levels were found")
        if y is None:
            for kind in ("contour", "contourf", "heatmap", "surface3d", "vtp", "trajectory"):
                if kind in kinds:
                    raise LandscapeError(f"{kind} needs a 2D surface; this one is 1D (draw it with kinds=curves)")
            standard = [n for n in names if n in STANDARD]
            if standard and wants("curves", True):
                fig = new_figure((_WIDTH, 4.0))
                landmarks = [(p[0], label) for p, label in text.landmarks] if len(text.landmarks) > 1 else []
                plot_curves(x, **{n: arrays[n] for n in standard}, log=log, vmax=vmax,
                            ax=fig.add_subplot(), title=text.title or None, xlabel=text.xlabel,
                            landmarks=landmarks, done=done)
                written += save_figure(fig, out_dir / f"{prefix}_loss_acc{'_log' if log else ''}", formats, dpi)
            for name in (n for n in names if n not in STANDARD):  # e.g. min_eig, train_loss_se: one curve each
                if wants("curves", True):
                    written += compare_curves([(quantity_label(name), (x, arrays[name]))],
                                              out_dir / f"{prefix}_{name}", ylabel=quantity_label(name),
                                              log=log and is_loss(name),
                                              title=text.title or None, xlabel=text.xlabel, formats=formats, dpi=dpi)
            if has_eigs and wants("convexity", True):
                fig = new_figure((_WIDTH, 4.0))
                convexity_map(x, None, arrays["min_eig"], arrays["max_eig"], ax=fig.add_subplot(),
                              title=text.hessian_titled("convexity"), xlabel=text.xlabel)
                written += save_figure(fig, out_dir / f"{prefix}_convexity", formats, dpi)
                fig = new_figure((_WIDTH, 4.0))
                title = text.hessian_titled("Hessian eigenvalues")
                eigenvalue_curves(x, arrays["min_eig"], arrays["max_eig"], ax=fig.add_subplot(), done=done,
                                  title=title, xlabel=text.xlabel)
                written += save_figure(fig, out_dir / f"{prefix}_eigenvalues", formats, dpi)
            return written

        def draw_array(name: str) -> list[Path]:
            out: list[Path] = []
            values = arrays[name]
            loss_like = is_loss(name)
            if is_accuracy(name):
                values = as_percent(values)
            auto = _AUTO_2D["loss" if loss_like else "acc"]
            common = dict(xlabel=text.xlabel, ylabel=text.ylabel, title=text.titled(name),
                          landmarks=text.landmarks, done=done)
            scale = dict(log=log, vmax=vmax) if loss_like else {}
            suffix = "_log" if log and loss_like else ""
            for kind in ("contour", "contourf", "heatmap"):
                if not wants(kind, kind in auto):
                    continue
                fig = new_figure(_figsize_2d(x, y, colorbar=kind != "contour"))
                ax = fig.add_subplot()
                if kind == "heatmap":
                    heatmap(x, y, values, ax=ax, label=quantity_label(name), **scale, **common)
                else:
                    draw = contour if kind == "contour" else contourf
                    draw(x, y, values, ax=ax, levels=levels, method=method, label=quantity_label(name),
                         **scale, **common)
                out += save_figure(fig, out_dir / f"{prefix}_{name}_{kind}{suffix}", formats, dpi)
            if wants("surface3d", "surface3d" in auto):
                fig = new_figure((_WIDTH + 0.4, 5.0))
                surface3d(x, y, values, ax=fig.add_subplot(projection="3d"), label=quantity_label(name),
                          title=common["title"], xlabel=text.xlabel.split("  ")[0],
                          ylabel=text.ylabel.split("  ")[0], **scale)
                out += save_figure(fig, out_dir / f"{prefix}_{name}_surface3d{suffix}", formats, dpi)
            if wants("vtp", False):
                vtp_name = f"{prefix}_{name}{'_zmax=' + format(vmax, 'g') if vmax and loss_like else ''}{suffix}.vtp"
                if np.isfinite(values).any() or "vtp" in kinds:  # ("all" skips arrays with nothing yet)
                    out.append(write_vtp(out_dir / vtp_name, x, y, values, name=name,
                                         log=log and loss_like, zmax=vmax if loss_like else None))
            return out

        for name in names:
            try:
                written += draw_array(name)
            except LandscapeError as e:
                raise LandscapeError(f"{name}: {e}") from None
        if has_eigs and wants("convexity", True):
            fig = new_figure(_figsize_2d(x, y, colorbar=True))
            convexity_map(x, y, arrays["min_eig"], arrays["max_eig"], ax=fig.add_subplot(),
                          title=text.hessian_titled("convexity"),
                          xlabel=text.xlabel, ylabel=text.ylabel, landmarks=text.landmarks)
            written += save_figure(fig, out_dir / f"{prefix}_convexity", formats, dpi)
        if trajectory is not None and wants("trajectory", True):
            base = next((n for n in ("train_loss", "test_loss") if n in arrays), None)
            fig = new_figure(_figsize_2d(x, y, colorbar=False))
            plot_trajectory(trajectory[0], trajectory[1], x=x, y=y, values=arrays[base] if base else None,
                            explained_variance=explained_variance, ax=fig.add_subplot(), log=log, vmax=vmax,
                            levels=levels, title=text.titled(base) if base else text.title)
            written += save_figure(fig, out_dir / f"{prefix}_trajectory{'_log' if log else ''}", formats, dpi)
        elif "trajectory" in kinds:
            raise LandscapeError("no trajectory to draw: pass trajectory=(xs, ys) or a surface with "
                                 "trajectory_x/trajectory_y attributes (landscape plot --trajectory RUN_DIR)")
    return written


def _attr_list(value: Any) -> list[float]:
    import json

    if isinstance(value, str):
        value = json.loads(value)
    return [float(v) for v in np.asarray(value, dtype=np.float64).ravel()]
