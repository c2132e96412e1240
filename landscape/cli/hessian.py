"""``landscape hessian``: top/bottom eigenvalues, trace and spectral density of a checkpoint's Hessian."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import non_negative_float, positive_int
from .measure import PartsFile, add_measure_data_args, load_measure_inputs, output_dir

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


def _rounding_note(err: float, which: str, tol: float, samples: int) -> list[str]:
    """A line when float32 products are well beyond ``tol`` along the first eigenvector.

    A perturbation E of H moves an eigenvalue by about ``u^T E u``, at most ``||E u||``: the
    measured error bounds how far float32 rounding can move these eigenvalues.
    """
    if err <= 10 * tol:  # within an order of what was asked: not worth a line
        return []
    return [f"note: float32 Hessian-vector products are {err:.1e} off (relative, along the {which} eigenvector, "
            f"against float64 on {samples} samples), so these eigenvalues are good to about that, not to --tol "
            f"{tol:g}; --dtype float64 removes this (slower)"]


def _density_line(part: dict, png: Path) -> str:
    from ..hessian.density import quadrature_moments

    m1, m2 = quadrature_moments(part["nodes"], part["weights"], 2)
    nodes = [v for row in part["nodes"] for v in row]
    return (f"density (SLQ, {part['n_hvps']} HVPs): nodes in [{min(nodes):.4g}, {max(nodes):.4g}], "
            f"tr/P ~ {m1:.4g}, ||H||_F^2/P ~ {m2:.4g}; figure {png}")


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import hessian
    from ..errors import LandscapeError
    from ..hessian.precision import CHECK_SAMPLES

    if args.no_eigenvalues and not (args.trace or args.density):
        raise LandscapeError("--no-eigenvalues leaves nothing to measure: add --trace and/or --density")
    ckpt, data, info = load_measure_inputs(args)
    progress = not args.no_progress
    op = hessian.HessianOperator(ckpt.model, data, args.loss, args.batch_size, args.params, args.weight_decay,
                                 info["device"])
    out_dir = output_dir(args)
    record = PartsFile(out_dir / "hessian.json", {**info, "operator": op.settings})
    lines = [f"{args.ckpt}: Hessian over {op.num_params:,} parameters, {op.num_samples:,} {args.split} samples"
             + (f", weight decay {args.weight_decay:g} included" if args.weight_decay else "")]
    reused = " (reused: same checkpoint, data and settings)"

    if not args.no_eigenvalues:
        ends = ["largest", "smallest"] if args.which == "both" else [args.which]
        for which in ends:
            request = {"k": args.k, "which": which, "method": args.method, "tol": args.tol,
                       "max_iter": args.max_iter, "seed": args.seed}
            check = which == ends[0] and op.param_dtype != torch.float64
            part = record.reuse(f"{which}_eigenvalues", request)
            rounding = record.reuse("float32_rel_error", request) if check else None
            stored = part is not None and (rounding is not None or not check)
            note = reused if stored else ""
            if not stored:
                res = hessian.eigenvalues(ckpt.model, op, k=args.k, which=which, method=args.method, tol=args.tol,
                                          max_iter=args.max_iter, seed=args.seed, progress=progress)
                part = res.to_dict()
                record.put(f"{which}_eigenvalues", part, request)
                if check:  # measured by eigenvalues() and folded into its errors; its own part for the note
                    rounding = {"value": res.rounding_error, "vector": f"{which} eigenvector",
                                "samples": min(CHECK_SAMPLES, op.num_samples)}
                    record.put("float32_rel_error", rounding, request)
            flag = "" if part["converged"] else "  (limited by float32 rounding, see the note)" if \
                part.get("precision_limited") else "  (NOT converged: raise --max-iter or loosen --tol)"
            lines.append(f"{which} {args.k} ({args.method}, {part['n_hvps']} HVPs): "
                         + ", ".join(f"{v:.6g}" for v in part["values"]) + flag + note)
            if check:
                lines += _rounding_note(rounding["value"], which, args.tol, rounding["samples"])
    if args.trace:
        request = {"probes": args.probes, "method": args.trace_method, "seed": args.seed}
        part, note = record.reuse("trace", request), reused
        if part is None:  # Hutchinson's finished probes are saved block by block ("trace_probes")
            resumable = args.trace_method == "hutchinson"
            partial = (record.reuse("trace_probes", request) if resumable else None) or {"samples": []}

            def save_block(samples) -> None:
                record.put("trace_probes", {"samples": samples}, request)

            done = partial["samples"]
            part = hessian.trace(ckpt.model, op, n_probes=args.probes, method=args.trace_method, seed=args.seed,
                                 progress=progress, done=done, on_block=save_block if resumable else None).to_dict()
            note = f" ({len(done)} of {args.probes} probes reused from an interrupted run)" if done else ""
            record.drop("trace_probes")
            record.put("trace", part, request)
        lines.append(f"trace ({args.trace_method}, {part['n_hvps']} HVPs): {part['value']:.6g} +- "
                     f"{part['stderr']:.2g} (s.e.){note}")
    if args.density:
        request = {"n_iter": args.density_iter, "n_runs": args.density_runs, "seed": args.seed}
        part, note = record.reuse("density", request), reused
        png, fresh = out_dir / "density.png", part is None
        if fresh:  # finished SLQ runs are saved one by one ("density_runs") and picked up again
            partial = record.reuse("density_runs", request) or {"runs": {}}
            done = {int(r): (run["nodes"], run["weights"]) for r, run in partial["runs"].items()}

            def save_run(r: int, nodes, weights) -> None:
                partial["runs"][str(r)] = {"nodes": nodes, "weights": weights}
                record.put("density_runs", partial, request)

            part, note = hessian.density(ckpt.model, op, n_iter=args.density_iter, n_runs=args.density_runs,
                                         seed=args.seed, progress=progress, done=done, on_run=save_run).to_dict(), ""
            part["png"] = str(png)
            if done:
                note = f" ({len(done)} of {args.density_runs} runs reused from an interrupted run)"
        hessian.plot_density(part["grid"], part["density"], png,  # drawn again on reuse: the PNG may be gone
                             f"{'/'.join(Path(args.ckpt).parts[-2:])}: Hessian spectral density (SLQ, "
                             f"{args.density_runs} runs x {args.density_iter} steps)")
        if fresh:  # recorded once its figure exists
            record.drop("density_runs")
            record.put("density", part, request)
        lines.append(_density_line(part, png) + note)
    path = record.write()
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0
