"""``landscape plot``: compute what is missing of a surface, then draw it."""
from __future__ import annotations

import argparse

from . import surface as surface_cmd

HELP = "compute (or resume) a 1D/2D landscape around a checkpoint or between checkpoints, and draw it"
DESCRIPTION = (HELP + ". Runs in parallel under mpirun (mpirun -n 8 landscape plot --ckpt model.pt); "
               "rerunning the same command resumes and computes only missing points.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    surface_cmd.add_arguments(p)
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf"], help="figure formats")
    p.add_argument("--log", action="store_true", help="log-scale loss axes")
    p.add_argument("--vmax", type=float, default=None, help="clip loss above this value in 2D plots")
    p.add_argument("--trajectory", default=None, metavar="RUN_DIR",
                   help="PCA directions from RUN_DIR's snapshots, and the projected path over the contour")


def run(args: argparse.Namespace) -> int:
    from ..parallel import get_comm, rank_of
    from ..workflow import run_surface_job

    if args.trajectory:
        from ..trajectory import prepare_trajectory_job

        job = prepare_trajectory_job(surface_cmd.job_from_args(args), args.trajectory)
    else:
        job = surface_cmd.job_from_args(args)
    surface = run_surface_job(job)
    if rank_of(get_comm()) != 0:
        return 0
    from ..plot import render

    paths = render(surface, job.surface_path().parent, formats=tuple(args.format), log=args.log, vmax=args.vmax)
    print(f"surface: {job.surface_path()}")
    for path in paths:
        print(f"figure:  {path}")
    return 0
