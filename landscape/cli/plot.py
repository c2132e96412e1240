"""``landscape plot``: compute what is missing of a surface, then draw it."""
from __future__ import annotations

import argparse

from . import surface as surface_cmd
from .common import finite_float

HELP = "compute (or resume) a 1D/2D landscape around a checkpoint or between checkpoints, and draw it"
DESCRIPTION = (HELP + ". Runs in parallel under mpirun (mpirun -n 8 landscape plot --ckpt model.pt); "
               "rerunning the same command resumes and computes only missing points.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    surface_cmd.add_arguments(p)
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf"], help="figure formats")
    p.add_argument("--log", action="store_true", help="log-scale loss axes")
    p.add_argument("--vmax", type=finite_float, default=None, help="clip loss above this value in 2D plots")
    p.add_argument("--no-html", action="store_true",
                   help="skip the interactive page (SURF.html beside the figures; see landscape view)")
    p.add_argument("--trajectory", default=None, metavar="RUN_DIR",
                   help="PCA directions from RUN_DIR's snapshots, and the projected path over the contour "
                        "(around RUN_DIR/model.pt, so --ckpt may be left out; without --x/--y a 21x21 grid covers the path; "
                        "a grid the path leaves is widened, with a warning)")
    for action in p._actions:  # --trajectory RUN_DIR names its own checkpoint
        if action.dest == "ckpt":
            action.required = False


def run(args: argparse.Namespace) -> int:
    from ..parallel import get_comm, rank_of
    from ..workflow import run_surface_job

    if args.trajectory:
        return _run_trajectory(args)
    if not args.ckpt:
        from ..errors import LandscapeError

        raise LandscapeError("--ckpt is required (or --trajectory RUN_DIR, which plots around RUN_DIR/model.pt)")
    job = surface_cmd.job_from_args(args)
    if surface_cmd.announce_plan(args, job):
        return 0
    surface = run_surface_job(job)
    if rank_of(get_comm()) != 0:
        return 0
    from ..plot import render

    _refuse_blank(job, surface)
    paths = render(surface, job.surface_path().parent, formats=tuple(args.format), log=args.log, vmax=args.vmax)
    _report(job, surface, paths + _view(args, job, surface))
    return 0


def _view(args: argparse.Namespace, job, surface) -> list:
    """The interactive page next to the figures (``--no-html`` skips it)."""
    if args.no_html:
        return []
    from ..view import view_html

    return [view_html([surface], job.surface_path().with_suffix(".html"))]


def _refuse_blank(job, surface) -> None:
    """No figures of a surface without one finite value (blank frames); the computed file stays."""
    from .render import refuse_if_nothing_finite

    refuse_if_nothing_finite(surface, None, f"look at the numbers in {job.surface_path()}")


def _report(job, surface, paths) -> None:
    """What was written, and a note if some points' Hessian extremes did not converge."""
    from ..workflow import eig_note

    print(f"surface: {job.surface_path()}")
    note = eig_note(surface)
    if note:
        print(note)
    for path in paths:
        print(f"{'view:   ' if str(path).endswith('.html') else 'figure: '} {path}")


def _run_trajectory(args: argparse.Namespace) -> int:
    """PCA directions of the run, the surface around its final model, the standard views and the path."""
    import dataclasses
    import sys
    import warnings
    from pathlib import Path

    import numpy as np

    from ..errors import LandscapeError
    from ..parallel import get_comm, rank_of
    from ..trajectory import TRAJECTORY_POINTS, TrajectoryGridWarning, draw_trajectory, prepare_trajectory_job
    from ..workflow import run_surface_job

    if (args.x is None) != (args.y is None):
        raise LandscapeError("with --trajectory give both --x and --y, or neither (the grid then covers the path)")
    run_dir = Path(args.trajectory)
    args.ckpt = args.ckpt or str(run_dir / "model.pt")
    if args.out is None:
        args.out = str(Path("out") / f"{run_dir.resolve().name}_trajectory")
    job = surface_cmd.job_from_args(args)
    if args.x is None:  # a first look: the path's grid is no larger than plot's default line
        job = dataclasses.replace(job, x=np.linspace(-1, 1, TRAJECTORY_POINTS))
    with warnings.catch_warnings(record=True) as caught:  # the path leaving the user's grid widens it
        warnings.simplefilter("always", TrajectoryGridWarning)
        job = prepare_trajectory_job(job, run_dir, auto_grid=args.x is None)
    for w in caught:
        print(f"landscape plot: warning: {w.message}", file=sys.stderr)
    if surface_cmd.announce_plan(args, job):
        return 0
    surface = run_surface_job(job)
    if rank_of(get_comm()) != 0:
        return 0
    from ..plot import render

    out_dir = job.surface_path().parent
    _refuse_blank(job, surface)
    paths = render(surface, out_dir, formats=tuple(args.format), log=args.log, vmax=args.vmax)
    paths += draw_trajectory(surface, job.dir_file, out_dir / f"{job.surface_path().stem}_trajectory",
                             log=args.log, vmax=args.vmax, formats=tuple(args.format))
    print(f"directions: {job.dir_file}")
    _report(job, surface, paths + _view(args, job, surface))
    return 0
