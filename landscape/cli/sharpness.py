"""``landscape sharpness``: Keskar epsilon-sharpness, adaptive/average sharpness, PAC-Bayes sigma."""
from __future__ import annotations

import argparse

from .common import positive_float, positive_int
from .measure import add_measure_data_args, load_measure_inputs, output_dir

HELP = "sharpness measures (keskar, adaptive, average, pacbayes) of a checkpoint as JSON"
DESCRIPTION = ("Measure how sharp the minimum at a checkpoint is (eval mode, weights restored afterwards). "
               "Writes OUT/sharpness.json with each number and the settings that produced it.")
MEASURES = ("keskar", "adaptive", "average", "pacbayes")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_measure_data_args(p)
    p.add_argument("--measure", nargs="+", default=["keskar"], choices=MEASURES,
                   help="keskar: epsilon-sharpness; adaptive: worst-case (adaptive) sharpness; "
                        "average: average-case sharpness; pacbayes: PAC-Bayes sigma")
    k = p.add_argument_group("keskar")
    k.add_argument("--eps", type=positive_float, default=1e-3, help="box size (Keskar et al. use 1e-3 and 5e-4)")
    k.add_argument("--subspace-dim", type=positive_int, default=None,
                   help="maximise in a random P-dimensional subspace (Keskar et al.: 100) instead of the full space")
    k.add_argument("--max-iter", type=positive_int, default=10, help="L-BFGS-B iterations")
    a = p.add_argument_group("adaptive / average")
    a.add_argument("--rho", type=positive_float, default=0.05, help="perturbation radius")
    a.add_argument("--p", default="2", choices=["2", "inf"], help="norm of the worst-case ball")
    a.add_argument("--no-adaptive", action="store_true", help="c = 1 instead of c = |w|")
    a.add_argument("--m", type=positive_int, default=None, help="m-sharpness: measure on groups of M samples, average")
    a.add_argument("--steps", type=positive_int, default=20, help="gradient-ascent steps (worst case)")
    a.add_argument("--step-size", type=positive_float, default=None, help="ascent step (default: rho)")
    a.add_argument("--probes", "--mc-samples", dest="mc_samples", type=positive_int, default=None,
                   help="Monte Carlo draws (average: 20, pacbayes: 10 by default; --mc-samples is its old name)")
    b = p.add_argument_group("pacbayes")
    b.add_argument("--target", type=positive_float, default=0.1, help="allowed rise of the error (or loss)")
    b.add_argument("--metric", default="error", choices=["error", "loss"])
    b.add_argument("--magnitude-aware", action="store_true", help="noise N(0, sigma^2 w^2 + eps^2)")
    b.add_argument("--pb-eps", type=positive_float, default=1e-3, help="eps of the magnitude-aware noise")
    b.add_argument("--bisect-tol", type=positive_float, default=1e-2, help="relative width of the final bracket")
    p.add_argument("--dry-run", action="store_true",
                   help="print the planned gradient/forward passes and their estimated time from a short pilot, then stop")


def _request(name: str, args: argparse.Namespace) -> dict:
    """The options that determine measure ``name`` (a rerun with the same ones reuses its number)."""
    if name == "keskar":
        return {"eps": args.eps, "subspace_dim": args.subspace_dim, "max_iter": args.max_iter, "seed": args.seed}
    if name in ("adaptive", "average"):
        return {"rho": args.rho, "p": args.p, "adaptive": not args.no_adaptive, "m": args.m, "steps": args.steps,
                "step_size": args.step_size, "mc_samples": args.mc_samples, "seed": args.seed}
    return {"target": args.target, "metric": args.metric, "magnitude_aware": args.magnitude_aware,
            "pb_eps": args.pb_eps, "mc_samples": args.mc_samples, "bisect_tol": args.bisect_tol, "seed": args.seed}


def _measure(name: str, args: argparse.Namespace, model, data, common: dict) -> dict:
    from .. import sharpness

    if name == "keskar":
        res = sharpness.keskar(model, data, eps=args.eps, subspace_dim=args.subspace_dim, max_iter=args.max_iter,
                               **common)
    elif name in ("adaptive", "average"):
        res = sharpness.adaptive(model, data, rho=args.rho, p=args.p, kind="worst" if name == "adaptive"
                                 else "average", adaptive=not args.no_adaptive, m=args.m, n_steps=args.steps,
                                 step_size=args.step_size, n_probes=args.mc_samples or 20, **common)
    else:
        res = sharpness.pac_bayes_sigma(model, data, target=args.target, metric=args.metric,
                                        magnitude_aware=args.magnitude_aware, eps=args.pb_eps,
                                        n_probes=args.mc_samples or 10, tol=args.bisect_tol, **common)
    return res.to_dict()


def _line(name: str, part: dict, args: argparse.Namespace) -> str:
    if name == "keskar":
        return (f"keskar ({part['settings']['subspace']}, eps {args.eps:g}): {part['value']:.6g} "
                f"(loss {part['base_loss']:.5g} -> {part['max_loss']:.5g} in {part['n_iter']} L-BFGS-B iterations)")
    if name in ("adaptive", "average"):
        stderr = part.get("stderr")
        se = f" +- {stderr:.2g}" if stderr is not None and stderr == stderr else ""
        return (f"{name} ({'adaptive' if not args.no_adaptive else 'plain'}, p={args.p}, rho {args.rho:g}"
                f"{', m=' + str(args.m) if args.m else ''}): {part['value']:.6g}{se}")
    return (f"pacbayes ({'magnitude-aware' if args.magnitude_aware else 'plain'}, {args.metric} + {args.target:g}): "
            f"sigma {part['value']:.5g}, flatness 1/sigma^2 {part['flatness']:.5g}")


def run(args: argparse.Namespace) -> int:
    out_dir = output_dir(args, "sharpness.json")
    from ..cost import announce, sharpness_plan
    from ..store import MeasureStore

    ckpt, data, info = load_measure_inputs(args)
    common = dict(loss=args.loss, batch_size=args.batch_size, params=args.params, seed=args.seed,
                  device=info["device"], progress=not args.no_progress, data_on=args.data_on)
    base = {**info, "loss": args.loss, "batch_size": args.batch_size, "params": args.params}
    plan = lambda: sharpness_plan(ckpt.model, data, args.measure, vars(args), loss=args.loss,  # noqa: E731
                                  batch_size=args.batch_size, device=info["device"], params=args.params)
    if announce(plan, args.dry_run):
        return 0
    record = MeasureStore(out_dir / "sharpness.json", base, container="measures")
    lines = [f"{args.ckpt}: sharpness on {info['samples']:,} {args.split} samples"]
    for name in dict.fromkeys(args.measure):  # each once, in the order given
        request = _request(name, args)
        part, note = record.reuse(name, request), " (reused: same checkpoint, data and settings)"
        if part is None:
            part, note = _measure(name, args, ckpt.model, data, common), ""
            record.put(name, part, request)  # on disk before the next measure starts
        lines.append(_line(name, part, args) + note)
    path = record.write()
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0
