"""``landscape report RUNS_DIR``: generalization gap vs sharpness table with Kendall tau."""
from __future__ import annotations

import argparse

from .common import check_output_dir, device, fraction, positive_int, require_device

HELP = "table of generalization gap and sharpness per batch size / weight decay, with Kendall tau"
DESCRIPTION = (HELP + ". Reads every RUNS_DIR/*/model.pt, caches measures in measures.json beside each, and "
               "writes report.csv, report_runs.csv, report.md, report.json and report.html (with the views of the surface "
               "files found in each run's folder).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs_dir", help="directory of runs (from landscape sweep, or train --out DIR/NAME)")
    p.add_argument("--measures", default="top_eig,trace,keskar,pacbayes_flatness",
                   help="comma-separated: top_eig, trace, keskar, keskar_p100, pacbayes_flatness, adaptive, weight_norm "
                        "(empty for gaps only)")
    p.add_argument("--samples", type=positive_int, default=None,
                   help="measure on a fixed random subset of N training samples (default: all)")
    p.add_argument("--data-root", default=None, help="directory holding CIFAR / MNIST files")
    p.add_argument("--out", default=None, help="where the tables go (default: RUNS_DIR)")
    p.add_argument("--target-error", type=fraction, default=None,
                   help="test error at which steps to result and B_simple are read for the critical batch size "
                        "(default: the runs' own --target-error)")
    p.add_argument("--recompute", action="store_true", help="ignore cached measures")
    p.add_argument("--device", type=device, default=None, help="cpu, cuda (default: cpu)")
    p.add_argument("--no-html", action="store_true",
                   help="skip report.html (the tables and the views of every surface file under each run)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import LandscapeError

    if not Path(args.runs_dir).is_dir():
        raise LandscapeError(f"RUNS_DIR {args.runs_dir} is not a directory; give the --out of landscape sweep")
    check_output_dir(args.out or args.runs_dir, "--out" if args.out else "RUNS_DIR")
    require_device(args.device)
    from ..report import build_report

    report = build_report(args.runs_dir, args.measures, data_root=args.data_root, samples=args.samples,
                          device=args.device, recompute=args.recompute, progress=not args.no_progress,
                          target_error=args.target_error)
    print(report.format_table())
    paths = report.save(args.out or args.runs_dir)
    if not args.no_html:
        from pathlib import Path

        from ..view_report import report_html

        paths["html"] = report_html(report, Path(args.out or args.runs_dir) / "report.html")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
