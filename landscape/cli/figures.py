"""``landscape figures``: regenerate the papers' figures (all, or the ones named)."""
from __future__ import annotations

import argparse

from .common import check_output_dir, device, require_device, threads

HELP = "regenerate the papers' figures (Li et al., Keskar et al., Shallue et al., Golmant et al.) into figures/"
DESCRIPTION = (HELP + ". --scale demo uses built-in data and finishes on 2 CPU cores in minutes; --scale paper is "
               "the published setting (CIFAR-10 from --data-root, VGG-9, 300 epochs), for GPUs and mpirun. Models, "
               "surfaces and measurements are cached (--cache), so an interrupted run resumes and a second run only "
               "redraws.")
NAMES = ("li_fig3", "interpolation", "keskar_table", "hessian_vs_batch", "steps_to_result", "golmant", "trajectory",
         "lm_scaling", "edge_of_stability", "critical_batch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"figures to make (default: all): {', '.join(NAMES)}")
    p.add_argument("--scale", choices=["demo", "paper"], default="demo")
    p.add_argument("--out", default="figures", help="where the figures go")
    p.add_argument("--cache", default=None,
                   help="where trained models, surfaces and measurements are kept (default: runs/figures-SCALE)")
    p.add_argument("--data-root", default=None, help="directory holding CIFAR-10 (paper scale)")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf", "svg"], help="figure formats")
    p.add_argument("--device", type=device, default=None, help="cpu, cuda (under mpirun: one GPU per local rank)")
    p.add_argument("--threads", type=threads, default=None,
                   help="torch threads per process (default: 1 at demo scale, where the models are tiny)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import time

    from ..figures import FIGURES, make_figures, resolve_names

    if args.list:
        for name, recipe in FIGURES.items():
            print(f"{name:<18} {recipe.title}")
        return 0
    names = resolve_names(args.names)
    check_output_dir(args.out)
    check_output_dir(args.cache or f"runs/figures-{args.scale}", "--cache")
    require_device(args.device)
    start = time.perf_counter()
    results = make_figures(names, scale=args.scale, out=args.out, cache=args.cache, data_root=args.data_root,
                           device=args.device, progress=not args.no_progress, formats=args.format,
                           threads=args.threads)
    from ..parallel import get_comm, rank_of

    if rank_of(get_comm()) == 0:
        print(f"\n{len(results)} figure(s) at {args.scale} scale in {time.perf_counter() - start:.0f} s:")
        for name, r in results.items():
            files = ", ".join(str(p) for p in r.paths if str(p).endswith((".png", ".pdf", ".svg"))) or "-"
            print(f"  {name:<18} {r.seconds:7.1f} s  {files}")
    return 0
