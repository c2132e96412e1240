"""``landscape track RUN_DIR``: curvature and gradient noise at every snapshot of a run."""
from __future__ import annotations

import argparse

from .common import positive_float, positive_int

HELP = "top Hessian eigenvalue, trace and gradient noise scale at every snapshot of a run, against 2/lr"
DESCRIPTION = (HELP + ". Reads RUN_DIR/snapshots/*.pt and RUN_DIR/model.pt in step order, writes RUN_DIR/track.json "
               "(rewritten after every snapshot; rerunning resumes) and RUN_DIR/track.png. Lanczos starts from the "
               "previous snapshot's top eigenvector. B_simple uses per-sample gradients of the subset.")


_DEFAULTS = {"track_samples": 1024, "track_tol": 1e-3, "track_max_iter": 200, "track_probes": 30, "cold_check": False}


def add_tracking_arguments(p: argparse.ArgumentParser) -> None:
    """The measurement options shared by ``track`` and ``train --track-every``."""
    p.add_argument("--track-samples", type=positive_int, default=_DEFAULTS["track_samples"], metavar="N",
                   help="fixed random subset of N training samples every measurement uses (all if fewer)")
    p.add_argument("--track-tol", type=positive_float, default=_DEFAULTS["track_tol"], metavar="TOL",
                   help="relative accuracy asked of lambda_max")
    p.add_argument("--track-max-iter", type=positive_int, default=_DEFAULTS["track_max_iter"], metavar="N",
                   help="most Hessian-vector products per lambda_max")
    p.add_argument("--track-probes", type=positive_int, default=_DEFAULTS["track_probes"], metavar="N",
                   help="Hutchinson probes for the trace (at least 2)")
    p.add_argument("--cold-check", action="store_true",
                   help="also run Lanczos from a random start at every point: the products the warm start saved")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory from landscape train --out DIR --snapshot-every N (or a sweep run)")
    add_tracking_arguments(p)
    p.add_argument("--data-root", default=None, help="directory holding CIFAR / MNIST files")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cpu)")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf"])
    p.add_argument("--no-progress", action="store_true")


def tracking_options_given(args: argparse.Namespace) -> list[str]:
    """The tracking flags set to something other than their default (train refuses them without --track-every)."""
    return [f"--{k.replace('_', '-')}" for k, v in _DEFAULTS.items() if getattr(args, k) != v]


def tracker_options(args: argparse.Namespace) -> dict:
    return {"samples": args.track_samples, "tol": args.track_tol, "max_iter": args.track_max_iter,
            "n_probes": args.track_probes, "cold_check": args.cold_check}


def summary(tracker) -> str:
    """One line per point and what the warm starts saved."""
    run = tracker.run_meta
    rows = [f"{'step':>7} {'lambda_max':>11} {'2/lr':>8} {'trace':>10} {'± SE':>8} {'|G|':>9} {'B_simple':>9} {'± SE':>8}"
            f" {'HVPs':>5}"]
    for p in tracker.points:
        lr = p.get("lr") or run.get("lr")
        rows.append(f"{p['step']:>7} {p['lambda_max']:>11.4g} {2 / lr if lr else float('nan'):>8.4g} "
                    f"{p['trace']:>10.4g} {p['trace_se']:>8.2g} {p['grad_norm']:>9.3g} {p['b_simple']:>9.4g} "
                    f"{p['b_simple_se']:>8.2g} {p['lambda_max_hvps']:>5}")
    saved = tracker.hvps_saved()
    if saved is not None:
        cold = sum(p["cold_hvps"] for p in tracker.points)
        rows.append(f"warm starts used {cold - saved} Hessian-vector products for lambda_max where cold starts used "
                    f"{cold} ({saved} saved)")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..track import draw_track, track_run

    tracker = track_run(args.run_dir, data_root=args.data_root, device=args.device, progress=not args.no_progress,
                        **tracker_options(args))
    print(summary(tracker))
    paths = draw_track(tracker.to_dict(), Path(args.run_dir) / "track", formats=tuple(args.format),
                       title=f"{Path(args.run_dir).name}: curvature and gradient noise over training")
    print(f"wrote {Path(args.run_dir) / 'track.json'}, " + ", ".join(str(p) for p in paths))
    return 0
