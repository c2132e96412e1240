"""``landscape hessian``: top/bottom eigenvalues, trace and spectral density of a checkpoint's Hessian."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import non_negative_float, positive_float, positive_int
from .measure import add_measure_data_args, load_measure_inputs, output_dir

# SLQ settings: the default is a first look (see README for its accuracy), --density-full the fine one.
DENSITY_QUICK, DENSITY_FULL = (40, 3), (80, 10)

HELP = "Hessian eigenvalues (Lanczos/power), trace (Hutchinson/Hutch++) and spectral density (SLQ) as JSON"
DESCRIPTION = ("Measure the Hessian of the dataset loss at a checkpoint, matrix-free (Hessian-vector products "
               "over the whole split, eval mode). Writes OUT/hessian.json and, with --density, OUT/density.png.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_measure_data_args(p)
    p.add_argument("--k", type=positive_int, default=5, help="number of eigenvalues")
    p.add_argument("--which", default="largest", choices=["largest", "smallest", "both"],
                   help="largest, smallest (most negative), or k of each")
    p.add_argument("--method", default="auto", choices=["auto", "lanczos", "block", "power"],
                   help="auto: Lanczos, or block Lanczos when a block of products costs enough less per vector "
                        "(landscape.hessian.eigenvalues)")
    p.add_argument("--tol", type=positive_float, default=1e-6, help="relative accuracy asked of each eigenvalue")
    p.add_argument("--max-iter", type=positive_int, default=None,
                   help="most Hessian-vector products (Lanczos: total; power: per eigenvalue)")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                   help="add wd/2 ||w||^2 to the loss (wd to every eigenvalue, wd*P to the trace)")
    p.add_argument("--trace", action="store_true", help="also estimate the trace")
    p.add_argument("--trace-method", default="hutchinson", choices=["hutchinson", "hutch++"])
    p.add_argument("--probes", type=positive_int, default=100, help="Hessian-vector products for the trace")
    p.add_argument("--density", action="store_true", help="also estimate the spectral density (SLQ) and draw it")
    p.add_argument("--density-iter", type=positive_int, default=None,
                   help=f"Lanczos steps per SLQ run (default {DENSITY_QUICK[0]}; {DENSITY_FULL[0]} with --density-full)")
    p.add_argument("--density-probes", "--density-runs", dest="density_runs", type=positive_int, default=None,
                   help=f"SLQ runs, one per random start vector (default {DENSITY_QUICK[1]}; {DENSITY_FULL[1]} with "
                        "--density-full; --density-runs is its old name)")
    p.add_argument("--density-full", action="store_true",
                   help=f"the finer density: {DENSITY_FULL[0]} steps x {DENSITY_FULL[1]} runs ({DENSITY_FULL[0] * DENSITY_FULL[1]} "
                        f"products instead of {DENSITY_QUICK[0] * DENSITY_QUICK[1]}; the earlier default)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the planned Hessian-vector products and their estimated time from a short pilot, then stop")
    p.add_argument("--no-eigenvalues", action="store_true", help="skip the eigenvalues (trace/density only)")


def _rounding_note(err: float, which: str, tol: float, samples: int, flagged: bool = False) -> list[str]:
    """A line when float32 products are well beyond ``tol`` along the first eigenvector, or when a
    result line was flagged as limited by them (``flagged``: the flag points at this line).

    A perturbation E of H moves an eigenvalue by about ``u^T E u``, at most ``||E u||``: the
    measured error bounds how far float32 rounding can move these eigenvalues.
    """
    if err <= 10 * tol and not flagged:  # within an order of what was asked: not worth a line
        return []
    return [f"note: float32 Hessian-vector products are {err:.1e} off (relative, along the {which} eigenvector, "
            f"against float64 on {samples} samples), so these eigenvalues are good to about that, not to --tol "
            f"{tol:g}; --dtype float64 removes this (slower)"]


def _density_line(part: dict, png: Path) -> str:
    from ..hessian.density import quadrature_moments

    import numpy as np

    m1, m2 = quadrature_moments(part["nodes"], part["weights"], 2)
    nodes = [v for row in part["nodes"] for v in row]
    # the spread of the runs' own moments is the estimate's accuracy (runs are independent)
    per_run = np.array([quadrature_moments([n], [w], 2) for n, w in zip(part["nodes"], part["weights"])])
    se = per_run.std(axis=0, ddof=1) / np.sqrt(len(per_run)) if len(per_run) > 1 else [np.nan, np.nan]
    return (f"density (SLQ, {part['n_hvps']} HVPs): nodes in [{min(nodes):.4g}, {max(nodes):.4g}], "
            f"tr/P ~ {m1:.4g} +- {se[0]:.2g}, ||H||_F^2/P ~ {m2:.4g} +- {se[1]:.2g} (s.e. over "
            f"{len(per_run)} runs); figure {png}")


def run(args: argparse.Namespace) -> int:
    from ..errors import LandscapeError
    from ..store import MeasureStore

    if args.no_eigenvalues and not (args.trace or args.density):
        raise LandscapeError("--no-eigenvalues leaves nothing to measure: add --trace and/or --density")
    out_dir = output_dir(args, "hessian.json")
    import torch

    from .. import hessian
    from ..cost import announce, hessian_plan
    from ..hessian.precision import CHECK_SAMPLES

    ckpt, data, info = load_measure_inputs(args)
    progress = not args.no_progress
    # A dry run's operator streams: resident batches would read all the data for a plan that needs a head.
    op = hessian.EmpiricalRisk(ckpt.model, data, loss=args.loss, batch_size=args.batch_size, params=args.params,
                               weight_decay=args.weight_decay, device=info["device"],
                               data_on="stream" if args.dry_run else args.data_on)
    record = MeasureStore(out_dir / "hessian.json", {**info, "operator": op.settings})
    lines = [f"{args.ckpt}: Hessian over {op.num_params:,} parameters, {op.num_samples:,} {args.split} samples"
             + (f", weight decay {args.weight_decay:g} included" if args.weight_decay else "")]
    reused = " (reused: same checkpoint, data and settings)"
    preset = DENSITY_FULL if args.density_full else DENSITY_QUICK
    args.density_iter, args.density_runs = args.density_iter or preset[0], args.density_runs or preset[1]
    ends = ["largest", "smallest"] if args.which == "both" else [args.which]
    plan = lambda: hessian_plan(  # noqa: E731
        op, data, ends=[] if args.no_eigenvalues else ends, k=args.k, method=args.method, max_iter=args.max_iter,
        trace=args.trace, probes=args.probes, density=args.density, density_iter=args.density_iter,
        density_runs=args.density_runs, float32_check=op.param_dtype != torch.float64 and not args.no_eigenvalues)
    if announce(plan, args.dry_run):
        return 0

    # Each measure reuses a finished part of hessian.json made by the same request, and resumes an
    # interrupted trace or density from its saved probes or runs (the store= of landscape.hessian).
    if not args.no_eigenvalues:
        flagged = False
        for which in ends:
            res = hessian.eigenvalues(op, k=args.k, which=which, method=args.method, tol=args.tol,
                                      max_iter=args.max_iter, seed=args.seed, progress=progress, store=record)
            flag = "" if res.converged else "  (limited by float32 rounding, see the note)" if \
                res.precision_limited else "  (NOT converged: raise --max-iter or loosen --tol)"
            solver = res.settings.get("solver", args.method)  # what ran: auto names its choice
            how = args.method if solver == args.method else f"{args.method}: {solver}"
            if res.settings.get("graphs_retained"):
                how += ", graphs kept"
            lines.append(f"{which} {args.k} ({how}, {res.n_hvps} HVPs): "
                         + ", ".join(f"{v:.6g}" for v in res.values) + flag
                         + (reused if f"{which}_eigenvalues" in record.reused else ""))
            flagged = flagged or (not res.converged and res.precision_limited)
            if which == ends[-1] and res.rounding_error:
                lines += _rounding_note(res.rounding_error, which, args.tol, min(CHECK_SAMPLES, op.num_samples),
                                        flagged)
    if args.trace:
        res = hessian.trace(op, n_probes=args.probes, method=args.trace_method, seed=args.seed, progress=progress,
                            store=record)
        resumed = res.settings.get("resumed_probes", 0)
        note = reused if "trace" in record.reused else (
            f" ({resumed} of {args.probes} probes reused from an interrupted run)" if resumed else "")
        lines.append(f"trace ({args.trace_method}, {res.n_hvps} HVPs): {res.value:.6g} +- "
                     f"{res.stderr:.2g} (s.e.){note}")
    if args.density:
        png = out_dir / "density.png"
        part = hessian.density(op, n_iter=args.density_iter, n_probes=args.density_runs, seed=args.seed,
                               progress=progress, store=record).to_dict()
        resumed = part["settings"].get("resumed_runs", 0)
        note = reused if "density" in record.reused else (
            f" ({resumed} of {args.density_runs} runs reused from an interrupted run)" if resumed else "")
        hessian.plot_density(part["grid"], part["density"], png,  # drawn again on reuse: the PNG may be gone
                             f"{'/'.join(Path(args.ckpt).parts[-2:])}: Hessian spectral density (SLQ, "
                             f"{args.density_runs} runs x {args.density_iter} steps)")
        record.annotate("density", png=str(png))
        lines.append(_density_line(part, png) + note)
    path = record.write()
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0
