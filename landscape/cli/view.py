"""``landscape view SURF.h5 [more.h5 ...] -o view.html``: an interactive page of one or more surfaces."""
from __future__ import annotations

import argparse

HELP = "write one standalone, offline HTML page to explore surface files in 3D (several files share a colour scale)"
DESCRIPTION = (HELP + ". Rotate and zoom the surface, hover for x, y, loss and accuracy, switch between train/test "
               "loss and accuracy, toggle a log scale; 1D files are drawn as curves, trajectories over the contour.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("surfaces", nargs="+", metavar="SURF.h5", help="surface files (from landscape plot or surface)")
    p.add_argument("-o", "--out", default=None,
                   help="the page to write (default: SURF.html beside a single file, view.html for several)")
    p.add_argument("--title", default=None, help="page title (default: the files' names)")
    p.add_argument("--names", nargs="+", default=None, metavar="NAME",
                   help="one label per file (default: the file names)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import LandscapeError
    from ..view import view_html

    if args.names is not None and len(args.names) != len(args.surfaces):
        raise LandscapeError(f"--names gives {len(args.names)} labels for {len(args.surfaces)} files; give one per file")
    out = args.out
    if out is None:
        out = Path(args.surfaces[0]).with_suffix(".html") if len(args.surfaces) == 1 else Path("view.html")
    if Path(out).suffix.lower() not in (".html", ".htm"):
        raise LandscapeError(f"-o {out}: the page is HTML; give a file name ending in .html")
    path = view_html(args.surfaces, out, names=args.names, title=args.title)
    print(f"view: {path}")
    return 0
