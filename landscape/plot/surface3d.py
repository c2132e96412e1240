"""2D landscapes in perspective: a 3D surface with the current mplot3d API.

Axes come from ``fig.add_subplot(projection="3d")`` (``Axes3D(fig)`` is gone from matplotlib).
mplot3d has no log axis, so ``log`` draws ``log10`` of the values; ``vmax`` flattens everything
above it (as Li et al.'s ``zmax``), which keeps one diverged corner from squashing the basin.
NaN points leave holes.

mplot3d paints facets back to front by their mean projected depth, which gets steep walls wrong
(a far facet painted over a near one, as in the demo's first 3D figures). A height field has an
order that cannot be wrong: under the orthographic projection used here, whatever hides a facet
lies between it and the eye, so horizontally nearer; `HeightFieldOrder` paints facets by their
horizontal distance from the eye along the view azimuth, recomputed at every draw (rotation works).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from ..errors import LandscapeError
from .canvas import axes_for, grid_arrays
from .levels import finite_values

MAX_FACETS_PER_AXIS = 120  # beyond this the picture does not improve, only the file size grows


class HeightFieldOrder:
    """Depth key for mplot3d's painter: larger means farther from the eye, measured horizontally.

    Set as a `Poly3DCollection`'s sort function; ignores the projected depths it is given and
    returns, for each facet, minus the dot product of its centre (in the axes' box units) with the
    horizontal view direction. Exact for a height field seen in orthographic projection.
    """

    def __init__(self, ax, faces: np.ndarray):
        self.ax = ax
        self.centres = np.nanmean(np.asarray(faces, dtype=np.float64)[..., :2], axis=1)  # (n_faces, 2)

    def keys(self) -> np.ndarray:
        (x0, x1), (y0, y1) = self.ax.get_xlim3d(), self.ax.get_ylim3d()
        aspect = getattr(self.ax, "_box_aspect", None)
        bx, by = (float(aspect[0]), float(aspect[1])) if aspect is not None else (1.0, 1.0)
        u = (self.centres[:, 0] - x0) / ((x1 - x0) or 1.0) * bx
        v = (self.centres[:, 1] - y0) / ((y1 - y0) or 1.0) * by
        az = np.deg2rad(self.ax.azim)
        return -(u * np.cos(az) + v * np.sin(az))

    def __call__(self, projected_depths, axis: int = -1) -> np.ndarray:
        return self.keys()


def paint_in_height_field_order(ax, surf) -> bool:
    """Make ``surf`` (from ``plot_surface``) paint far facets first; False where mplot3d lacks the hooks."""
    faces = getattr(surf, "_faces", None)
    if faces is None or not hasattr(surf, "_zsortfunc") or len(faces) == 0:
        return False
    surf._zsortfunc = HeightFieldOrder(ax, faces)
    return True


def surface3d(x: Sequence[float], y: Sequence[float], values: np.ndarray, *, log: bool = False,
              vmax: float | None = None, ax: Axes | None = None, cmap: str = "viridis", label: str = "",
              colorbar: bool = False, elev: float = 32.0, azim: float = -58.0, title: str | None = None,
              xlabel: str = r"$\alpha$", ylabel: str = r"$\beta$"):
    """A shaded 3D surface of ``values[j, i]`` over ``(x[i], y[j])``; returns the `Poly3DCollection`.

    ``ax`` must be 3D axes (``fig.add_subplot(projection="3d")``) when given.
    """
    x, y, z = grid_arrays(x, y, values)
    ax = axes_for(ax, projection="3d", figsize=(6.0, 5.0))
    z = np.where(np.isfinite(z), z, np.nan)
    if vmax is not None:
        z = np.minimum(z, float(vmax))  # NaN stays NaN
    zlabel = label or "value"
    if log:
        finite = finite_values(z)
        if finite.size and finite.min() <= 0:
            raise LandscapeError("log scale needs positive values; this surface has values <= 0 (drop --log)")
        z = np.log10(z)
        zlabel = f"log$_{{10}}$ {zlabel}"
    finite = finite_values(z)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1.0)
    X, Y = np.meshgrid(x, y)
    rcount, ccount = min(len(y), MAX_FACETS_PER_AXIS), min(len(x), MAX_FACETS_PER_AXIS)
    # a faint mesh gives the eye the slope that flat colormapped facets alone do not
    edge = (0.0, 0.0, 0.0, 0.18 if max(rcount, ccount) <= 60 else 0.0)
    surf = ax.plot_surface(X, Y, z, cmap=cmap, norm=norm, linewidth=0.25, edgecolor=edge, antialiased=True,
                           rcount=rcount, ccount=ccount)
    ax.set_proj_type("ortho")  # the order below is exact in orthographic projection
    paint_in_height_field_order(ax, surf)
    ax.set_xlim(x.min(), x.max())
    ax.set_ylim(y.min(), y.max())
    if finite.size:
        ax.set_zlim(lo, hi if hi > lo else lo + 1.0)
    ax.view_init(elev=elev, azim=azim)
    ax.set_xlabel(xlabel, labelpad=2)
    ax.set_ylabel(ylabel, labelpad=2)
    ax.set_zlabel(zlabel, labelpad=4)
    ax.tick_params(labelsize=7, pad=0)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(5))
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.pane.set_facecolor((1, 1, 1, 0))
        axis.pane.set_edgecolor("0.8")
    if colorbar:
        ax.figure.colorbar(surf, ax=ax, shrink=0.6, pad=0.08, label=zlabel)
    if title:
        ax.set_title(title, fontsize=9)
    return surf
