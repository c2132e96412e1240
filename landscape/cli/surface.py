"""``landscape surface``: compute a surface file only (no figures), for scripting."""
from __future__ import annotations

import argparse

from .common import (add_checkpoint_args, add_data_args, bounded, check_input_file, check_output_dir, default_out_dir,
                     grid_range, positive_float, positive_int, require_device, seed, threads)
from .measure import add_data_on_arg

HELP = "compute a 1D/2D loss surface into an h5 file (no figures)"
MAX_POINTS = 10_000_000  # landscape.surface.MAX_POINTS, checked here before torch is imported


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p, multi=True)
    add_data_args(p)
    p.add_argument("--x", type=grid_range, default=None, help="MIN:MAX:COUNT along x (default -1:1:51, "
                   "or -0.5:1.5:41 between checkpoints)")
    p.add_argument("--y", type=grid_range, default=None, help="MIN:MAX:COUNT along y: makes the surface 2D")
    # --norm, --ignore, --seed and --orthogonalize are None unless given, so random_direction_options can
    # refuse them with --dir-file (defaults in RANDOM_DIRECTION_DEFAULTS)
    p.add_argument("--norm", default=None, choices=["filter", "layer", "weight", "dfilter", "dlayer", "none"],
                   help="how random directions are scaled to the weights (default: filter)")
    p.add_argument("--ignore", default=None, choices=["biasbn", "none"],
                   help="biasbn (default): zero direction on biases and BN parameters")
    # None unless given, so bias_dir_option can refuse it where no random direction is drawn
    p.add_argument("--bias-dir", default=None, choices=["random", "weights"],
                   help="with --ignore none, how biases and BN parameters of random directions move: a random "
                        "vector scaled to their norm (default), or the weights themselves "
                        "(tomgoldstein/loss-landscape's behaviour)")
    p.add_argument("--kind", default=None, choices=["weights", "states"],
                   help="perturb parameters only, or the whole state_dict incl. BN statistics "
                        "(default: weights; states between checkpoints)")
    p.add_argument("--seed", type=seed, default=None, help="seed of the random directions (default: 0)")
    p.add_argument("--orthogonalize", action="store_true", default=None, help="make y orthogonal to x")
    p.add_argument("--dir-file", default=None, help="read directions from this h5 file instead")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="evaluate every point on the same random subset of N samples per split")
    p.add_argument("--rtol", type=positive_float, default=None,
                   help="stop each point once the loss's standard error is below RTOL x loss")
    p.add_argument("--min-samples", type=positive_int, default=512, help="samples before --rtol may stop")
    p.add_argument("--precision", default=None, choices=["fp32", "tf32", "bf16"],
                   help="default: fp32, or what the surface being resumed was computed with")
    p.add_argument("--layout", default="auto", choices=["auto", "contiguous", "channels_last"],
                   help="memory layout of 4D models (auto: the faster one, measured once per model and device "
                        "and remembered, so the same command stays bit-identical)")
    p.add_argument("--fold-bn", default="auto", choices=["auto", "on", "off"],
                   help="evaluate with each eval-mode BatchNorm folded into the conv before it, refolded at every "
                        "point (auto: when the model allows it; values differ from unfolded at float rounding)")
    p.add_argument("--bn-stats", default="auto", choices=["auto", "recompute", "interpolate", "keep"],
                   help="BatchNorm running statistics at each point: recompute them from a fixed seeded set of "
                        "train batches, interpolate them along the direction (past a checkpoint variances can go "
                        "negative: an artefact), or keep the centre model's (auto: recompute between checkpoints "
                        "and where the direction moves them)")
    p.add_argument("--bn-samples", type=positive_int, default=2000, metavar="N",
                   help="train samples that --bn-stats recompute estimates the statistics from (default 2000, or "
                        "the whole split if smaller)")
    p.add_argument("--threads", type=threads, default=None,
                   help="torch threads per process (default: 1 per rank under mpirun, torch's default otherwise)")
    p.add_argument("--eig", action="store_true",
                   help="also store max_eig and min_eig of the train-loss Hessian at every point (one Lanczos run "
                        "per point, tens of Hessian-vector products each: far costlier than the loss)")
    # SUPPRESS: absent unless given, so eig_options can tell "--eig-tol without --eig" from the default
    p.add_argument("--eig-tol", type=positive_float, default=argparse.SUPPRESS, metavar="TOL",
                   help="relative accuracy asked of both eigenvalues (default: 1e-3)")
    p.add_argument("--eig-max-iter", type=bounded(int, 2), default=argparse.SUPPRESS, metavar="N",
                   help="most Hessian-vector products per point (default: 100)")
    p.add_argument("--eig-samples", type=positive_int, default=argparse.SUPPRESS, metavar="N",
                   help="Hessian on a fixed random subset of N train samples (default: all)")
    p.add_argument("--eig-seed", type=seed, default=argparse.SUPPRESS, metavar="SEED",
                   help="seed of that subset and of the Lanczos start vector (default: 0)")
    p.add_argument("--splits", nargs="+", default=["train", "test"], choices=["train", "test"])
    add_data_on_arg(p)
    p.add_argument("--out", default=None, help="output directory (default: out/<checkpoint name>; for "
                   "RUN/model.pt, out/RUN)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the planned work (points x samples) and its estimated time from a short pilot, then stop")
    p.add_argument("--no-progress", action="store_true")


def announce_plan(args: argparse.Namespace, job) -> bool:
    """Print the job's planned work and estimated time (rank 0); True when --dry-run says to stop."""
    from ..cost import announce, surface_plan
    from ..parallel import get_comm, on_root

    comm = get_comm()
    # on rank 0; the others wait for it, so a checkpoint its pilot refuses is one line, not one per rank
    on_root(comm, lambda: announce(lambda: surface_plan(job, workers=comm.Get_size() if comm is not None else 1),
                                   args.dry_run))
    return args.dry_run


def eig_options(args: argparse.Namespace) -> dict:
    """SurfaceJob's eig fields; the --eig-* options without --eig are refused rather than ignored."""
    from ..errors import LandscapeError

    given = {k: getattr(args, k) for k in ("eig_tol", "eig_max_iter", "eig_samples", "eig_seed")
             if hasattr(args, k)}
    if given and not args.eig:
        raise LandscapeError(f"--{next(iter(given)).replace('_', '-')} applies only with --eig; add --eig")
    return {"eig": args.eig, **given}


def bias_dir_option(args: argparse.Namespace) -> str:
    """SurfaceJob's bias_dir; given where no random direction is drawn (directions from a file, the
    plane of three checkpoints, the line between two) it is refused rather than silently ignored."""
    from ..errors import LandscapeError

    if args.bias_dir is None:
        return "random"
    source = "--trajectory" if getattr(args, "trajectory", None) else _fixed_directions(args)
    if source:
        raise LandscapeError(f"--bias-dir shapes random directions, and with {source} none is drawn (the "
                             "directions are fixed by it): drop --bias-dir")
    return args.bias_dir


RANDOM_DIRECTION_DEFAULTS = {"norm": "filter", "ignore": "biasbn", "seed": 0, "orthogonalize": False}


def _fixed_directions(args: argparse.Namespace) -> str | None:
    """The flag that fixes every direction so that none is drawn at random (None: some are drawn)."""
    return ("--dir-file" if args.dir_file else "--ckpt3" if args.ckpt3 else
            "--ckpt2 without --y" if args.ckpt2 and args.y is None else None)


def random_direction_options(args: argparse.Namespace) -> dict:
    """SurfaceJob's norm, ignore, seed and orthogonalize; where no direction is drawn at random
    (--dir-file, --ckpt3, --ckpt2 without --y) they are refused rather than silently ignored, and
    --orthogonalize where it has nothing to do (one direction, or --ckpt2's y, always orthogonal)."""
    from ..errors import LandscapeError

    given = [k for k in RANDOM_DIRECTION_DEFAULTS if getattr(args, k) is not None]
    trajectory = getattr(args, "trajectory", None)
    source = None if trajectory else _fixed_directions(args)  # a trajectory's PCA reads --ignore
    if given and source:
        flags = ", ".join(f"--{k}" for k in given)
        how = "gives them ready-made (they are used as they are)" if source == "--dir-file" else \
            "fixes them (no direction is drawn at random)"
        raise LandscapeError(f"{flags} shape{'s' if len(given) == 1 else ''} random directions, and {source} "
                             f"{how}: drop {flags}")
    if args.orthogonalize and not trajectory and (args.y is None or args.ckpt2):
        why = "with --ckpt2 the y direction is always made orthogonal to the line" if args.ckpt2 else \
            "a surface without --y has one direction"
        raise LandscapeError(f"--orthogonalize has nothing to do here ({why}): drop --orthogonalize")
    return {k: default if getattr(args, k) is None else getattr(args, k)
            for k, default in RANDOM_DIRECTION_DEFAULTS.items()}


def job_from_args(args: argparse.Namespace):
    """The SurfaceJob of the command line, checked on every rank; a refusal is one line under mpirun too."""
    from ..parallel import get_comm, on_every_rank

    return on_every_rank(get_comm(), lambda: _job_from_args(args))


def _job_from_args(args: argparse.Namespace):
    import numpy as np

    from ..errors import LandscapeError

    eig = eig_options(args)
    bias_dir = bias_dir_option(args)
    random_dirs = random_direction_options(args)
    x = args.x if args.x is not None else (np.linspace(-0.5, 1.5, 41) if args.ckpt2 else np.linspace(-1, 1, 51))
    if args.y is not None and len(x) * len(args.y) > MAX_POINTS:
        raise LandscapeError(f"--x and --y give {len(x) * len(args.y):,} points; at most {MAX_POINTS:,} fit one surface "
                             "(every point is a full evaluation): use fewer points per axis")
    out = args.out or str(default_out_dir(args.ckpt))
    for flag in ("ckpt", "ckpt2", "ckpt3", "dir_file"):
        check_input_file(getattr(args, flag), f"--{flag.replace('_', '-')}")
    check_output_dir(out)
    from ..workflow import SurfaceJob  # torch from here on: everything above fails fast

    require_device(args.device)

    return SurfaceJob(ckpt=args.ckpt, ckpt2=args.ckpt2, ckpt3=args.ckpt3, x=x, y=args.y, model=args.model,
                      model_args=args.model_args, dataset=args.dataset, data_root=args.data_root,
                      splits=args.splits, bias_dir=bias_dir, kind=args.kind, **random_dirs,
                      dir_file=args.dir_file, samples=args.samples,
                      loss=args.loss, batch_size=args.batch_size, device=args.device, rtol=args.rtol,
                      min_samples=args.min_samples, precision=args.precision, layout=args.layout, fold_bn=args.fold_bn,
                      bn_stats=args.bn_stats, bn_samples=args.bn_samples,
                      threads=args.threads, data_on=args.data_on,
                      out=out, progress=not args.no_progress,
                      **eig)


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    from ..parallel import get_comm, rank_of
    from ..workflow import eig_note, run_surface_job

    if announce_plan(args, job):
        return 0
    surface = run_surface_job(job)
    if rank_of(get_comm()) == 0:
        print(f"surface: {job.surface_path()} ({int(surface.done.sum())}/{surface.done.size} points)")
        note = eig_note(surface)
        if note:
            print(note)
    return 0
