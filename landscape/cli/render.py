"""``landscape render SURF.h5``: draw an existing surface file (no computing), for scripting."""
from __future__ import annotations

import argparse

from .common import bounded, check_output_dir, dpi, finite_float

HELP = "draw figures (and ParaView .vtp files) from an existing 1D/2D surface h5 file"
DESCRIPTION = (HELP + ". auto draws loss-and-accuracy curves for a 1D surface; contours, filled contours, "
               "a heatmap and a 3D view of each loss (and contours of each accuracy) for a 2D one.")

# The same names as landscape.plot.KINDS (checked by a test), kept here so --help never imports matplotlib.
KIND_CHOICES = ["auto", "all", "curves", "contour", "contourf", "heatmap", "surface3d", "vtp", "convexity",
                "trajectory"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("surface", metavar="SURF.h5", help="surface file written by landscape plot/surface")
    p.add_argument("--out", default=None, help="output directory (default: the surface file's directory)")
    p.add_argument("--kinds", nargs="+", default=["auto"], choices=KIND_CHOICES, metavar="KIND",
                   help=f"what to draw: {', '.join(KIND_CHOICES)}")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf", "svg"], help="figure formats")
    p.add_argument("--names", nargs="+", default=None, metavar="ARRAY",
                   help="surface arrays to draw (default: train/test loss and accuracy present in the file)")
    p.add_argument("--log", action="store_true", help="log-scale losses (levels, colours, 3D height, vtp)")
    p.add_argument("--vmax", type=finite_float, default=None, help="clip losses above this value (2D, 3D and vtp)")
    p.add_argument("--levels", type=bounded(int, 1, 1000), default=None, help="about this many contour levels")
    p.add_argument("--level-method", default="auto", choices=["auto", "linear", "log", "quantile"],
                   help="contour level spacing: auto is log-spaced when the loss spans > 30x, else linear")
    p.add_argument("--dpi", type=dpi, default=150, help="resolution of PNG files")
    p.add_argument("--prefix", default=None, help="file name prefix (default: the surface file's stem)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..plot import render
    from ..surface import load_surface

    surface = load_surface(args.surface)
    refuse_if_nothing_finite(surface, args.names, "draw other arrays with --names, or recompute the surface")
    check_output_dir(args.out or Path(args.surface).parent, "--out" if args.out else "the surface file's directory")
    paths = render(surface, args.out, kinds=tuple(args.kinds), formats=tuple(args.format), log=args.log,
                   vmax=args.vmax, names=args.names, levels=args.levels, method=args.level_method,
                   dpi=int(args.dpi), prefix=args.prefix)
    done, total = int(surface.done.sum()), int(surface.done.size)
    if done < total:
        print(f"note: {done}/{total} points computed; missing points are left blank")
    for path in paths:
        print(f"wrote {path}")
    return 0


def refuse_if_nothing_finite(surface, names, what_to_do: str) -> None:
    """A surface whose arrays to draw hold no finite value would give blank figures: say why instead."""
    import numpy as np

    from ..errors import LandscapeError
    from ..plot import STANDARD

    present = [n for n in (names or STANDARD + ("min_eig", "max_eig")) if n in surface.arrays]
    if not present or any(np.isfinite(surface.arrays[n]).any() for n in present):
        return  # something to draw (or names the renderer refuses in its own words)
    done, total = int(np.asarray(surface.done).sum()), int(np.asarray(surface.done).size)
    if done == 0:
        raise LandscapeError(f"none of the surface's {total} points is computed yet, so there is nothing to draw: "
                             "compute it with landscape surface (or plot) and the same settings first")
    raise LandscapeError(f"the surface has no finite values ({', '.join(present)} are NaN or inf at all {done} "
                         f"computed points: the model diverged or gave NaN there); check the checkpoint and the "
                         f"run that wrote it (e.g. a smaller --x/--y range, or without --rtol), or {what_to_do}")
