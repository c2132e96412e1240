"""``landscape hessian``: top/bottom eigenvalues, trace and spectral density of a checkpoint's Hessian."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import non_negative_float, positive_int
from .measure import add_measure_data_args, load_measure_inputs, output_dir

HELP = "Hessian eigenvalues (Lanczos/power), trace (Hutchinson/Hutch++) and spectral density (SLQ) as JSON"
DESCRIPTION = ("Measure the Hessian of the dataset loss at a checkpoint, matrix-free (Hessian-vector products "
               "over the whole split, eval mode). Writes OUT/hessian.json and, with --density, OUT/density.png.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_measure_data_args(p)
    p.add_argument("--k", type=positive_int, default=5, help="number of eigenvalues")
    p.add_argument("--which", default="largest", choices=["largest", "smallest", "both"],
                   help="largest, smallest (most negative), or k of each")
    p.add_argument("--method", default="lanczos", choices=["lanczos", "power"])
    p.add_argument("--tol", type=float, default=1e-6, help="relative accuracy asked of each eigenvalue")
    p.add_argument("--max-iter", type=positive_int, default=None,
                   help="most Hessian-vector products (Lanczos: total; power: per eigenvalue)")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                   help="add wd/2 ||w||^2 to the loss (wd to every eigenvalue, wd*P to the trace)")
    p.add_argument("--trace", action="store_true", help="also estimate the trace")
    p.add_argument("--trace-method", default="hutchinson", choices=["hutchinson", "hutch++"])
    p.add_argument("--probes", type=positive_int, default=100, help="Hessian-vector products for the trace")
    p.add_argument("--density", action="store_true", help="also estimate the spectral density (SLQ) and draw it")
    p.add_argument("--density-iter", type=positive_int, default=80, help="Lanczos steps per SLQ run")
    p.add_argument("--density-runs", type=positive_int, default=10, help="SLQ runs (random start vectors)")
    p.add_argument("--no-eigenvalues", action="store_true", help="skip the eigenvalues (trace/density only)")


def _rounding_note(record: dict, op, vector, which: str, tol: float) -> list[str]:
    """Record how far float32 products are from float64 along the first eigenvector; a line if well beyond tol.

    A perturbation E of H moves an eigenvalue by about ``u^T E u``, at most ``||E u||``: the
    measured error bounds how far float32 rounding can move these eigenvalues.
    """
    from ..hessian import rounding_error
    from ..hessian.precision import CHECK_SAMPLES

    err = rounding_error(op, vector)
    record["float32_rel_error"] = {"value": err, "vector": f"{which} eigenvector", "samples": min(CHECK_SAMPLES,
                                                                                                   op.num_samples)}
    if err <= 10 * tol:  # within an order of what was asked: not worth a line
        return []
    return [f"note: float32 Hessian-vector products are {err:.1e} off (relative, along the {which} eigenvector, "
            f"against float64 on {record['float32_rel_error']['samples']} samples), so these eigenvalues are good "
            f"to about that, not to --tol {tol:g}; --dtype float64 removes this (slower)"]


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import hessian
    from ..errors import LandscapeError
    from ..jsonfile import write_json_atomic

    if args.no_eigenvalues and not (args.trace or args.density):
        raise LandscapeError("--no-eigenvalues leaves nothing to measure: add --trace and/or --density")
    ckpt, data, info = load_measure_inputs(args)
    progress = not args.no_progress
    op = hessian.HessianOperator(ckpt.model, data, args.loss, args.batch_size, args.params, args.weight_decay,
                                 info["device"])
    out_dir = output_dir(args)
    record: dict = {**info, "operator": op.settings}
    lines = [f"{args.ckpt}: Hessian over {op.num_params:,} parameters, {op.num_samples:,} {args.split} samples"
             + (f", weight decay {args.weight_decay:g} included" if args.weight_decay else "")]

    if not args.no_eigenvalues:
        ends = ["largest", "smallest"] if args.which == "both" else [args.which]
        for which in ends:
            check = which == ends[0] and op.param_dtype != torch.float64
            res = hessian.eigenvalues(ckpt.model, op, k=args.k, which=which, method=args.method, tol=args.tol,
                                      max_iter=args.max_iter, seed=args.seed, progress=progress,
                                      return_vectors=check)
            record[f"{which}_eigenvalues"] = res.to_dict()
            flag = "" if res.converged else "  (NOT converged: raise --max-iter or loosen --tol)"
            lines.append(f"{which} {args.k} ({args.method}, {res.n_hvps} HVPs): "
                         + ", ".join(f"{v:.6g}" for v in res.values) + flag)
            if check:
                lines += _rounding_note(record, op, res.vectors[0], which, args.tol)
    if args.trace:
        res = hessian.trace(ckpt.model, op, n_probes=args.probes, method=args.trace_method, seed=args.seed,
                            progress=progress)
        record["trace"] = res.to_dict()
        lines.append(f"trace ({args.trace_method}, {res.n_hvps} HVPs): {res.value:.6g} +- {res.stderr:.2g} (s.e.)")
    if args.density:
        res = hessian.density(ckpt.model, op, n_iter=args.density_iter, n_runs=args.density_runs, seed=args.seed,
                              progress=progress)
        out_dir.mkdir(parents=True, exist_ok=True)
        png = out_dir / "density.png"
        res.save_png(png, title=f"{'/'.join(Path(args.ckpt).parts[-2:])}: Hessian spectral density (SLQ, {args.density_runs} runs "
                                f"x {args.density_iter} steps)")
        record["density"] = {**res.to_dict(), "png": str(png)}
        m1, m2 = res.moments(2)
        lines.append(f"density (SLQ, {res.n_hvps} HVPs): nodes in [{res.nodes.min():.4g}, {res.nodes.max():.4g}], "
                     f"tr/P ~ {m1:.4g}, ||H||_F^2/P ~ {m2:.4g}; figure {png}")
    record["n_hvps_total"] = op.n_hvps
    path = write_json_atomic(out_dir / "hessian.json", record)
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0
