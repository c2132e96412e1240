"""``landscape demo``: small vs large batch on built-in digits, end to end in a few minutes."""
from __future__ import annotations

import argparse

from .common import check_output_dir, grid_side, seed

HELP = "train small- and large-batch convnets on digits and draw their landscapes (a few minutes on a CPU)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="output directory (reruns resume)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--grid", type=grid_side, default=21, help="2D grid side")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf"])
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import json

    check_output_dir(args.out)
    from ..demo import format_summary, run_demo

    summary = run_demo(args.out, seed=args.seed, grid=args.grid, progress=not args.no_progress,
                       formats=tuple(args.format))
    print(format_summary(summary))
    with open(f"{args.out}/summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    return 0
