"""``landscape bench`` (default mode): how close the surface evaluator runs to a bare forward pass.

Reports, from one process on one machine: points and samples per second; per-point time over
the best warmed-up eager ``model(x)`` pass over the same samples (the overhead ratio, batch
sizes scanned); achieved FLOP/s against the measured matmul peak; each floor-lowering option as
a time ratio; the work saved by ``--rtol`` on a dataset of at least 4,000 samples; and, under
mpirun, the speedup and parallel efficiency over one rank with one thread. The timed surface
runs with its defaults, so it folds BatchNorm where the model allows (``fold_bn`` pairs) and
can run below the eager floors.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..data import get_dataset
from ..directions import random_directions
from ..evaluation import channels_last_model, measure_batch_size, measure_layout
from ..parallel import configure_threads, get_comm, rank_of
from ..surface import compute_surface
from . import machine_info


def _model_for(name: str, data, seed: int = 0, model_args: dict | None = None):
    from ..train import init_model

    return init_model(name, data, seed=seed, **(model_args or {})).eval()


def matmul_peak(device: torch.device, n: int = 1024, repeat: int = 5) -> float:
    """Measured fp32 matmul FLOP/s: the machine's practical peak."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def forward_flops(model, inputs: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return float(counter.get_total_flops())


def _eager_passes(model, batches: list[torch.Tensor], n_points: int) -> float:
    """Wall time of ``n_points`` bare ``model(x)`` passes over ``batches``: the floor of that many points."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(n_points):
            for xb in batches:
                model(xb)
        return time.perf_counter() - t0


def _interleaved_overhead(model, dirs, data, inputs: torch.Tensor, grid: int, bs: int, layout: str,
                          plain_bs: int, sweeps: int, device, fold_bn: bool | str = "auto") -> dict:
    """Per-point time of a surface against bare eager passes, measured side by side.

    The surface is computed row by row through `compute_surface` (the real code path, its setup
    paid once per row), and each row is timed next to the same number of bare passes, in a
    shuffled order. On a shared machine the speed drifts by tens of percent within a minute,
    more than the few percent being measured; the median of per-row ratios cancels that drift,
    where best-of-N runs taken minutes apart do not. Two floors: the plain eager pass (default
    layout, its best batch size: what a hand-written loop gets) and the eager pass in the
    evaluator's own layout and batch size (what the evaluator's bookkeeping adds on top).
    """
    xs = np.linspace(-1, 1, grid)
    plain = [b.contiguous() for b in torch.split(inputs, plain_bs)]
    with channels_last_model(model, layout == "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        same = [b.contiguous(memory_format=fmt) for b in torch.split(inputs, bs)]
        _eager_passes(model, same, 2)
    _eager_passes(model, plain, 2)
    warm = compute_surface(model, dirs, data, [0.0], [0.0], progress=False, comm=None, batch_size=bs,
                           device=device, layout=layout, fold_bn=fold_bn)

    def surface_row(y: float) -> float:
        t0 = time.perf_counter()
        compute_surface(model, dirs, data, xs, [y], progress=False, comm=None, batch_size=bs, device=device,
                        layout=layout, fold_bn=fold_bn)
        return time.perf_counter() - t0

    def eager_same() -> float:
        with channels_last_model(model, layout == "channels_last"):
            return _eager_passes(model, same, grid)

    tasks = {"surface": surface_row, "plain": lambda y: _eager_passes(model, plain, grid),
             "same": lambda y: eager_same()}
    times: dict[str, list[float]] = {k: [] for k in tasks}
    rng = np.random.default_rng(0)
    for _ in range(sweeps):
        for y in xs:
            for name in rng.permutation(list(tasks)):
                times[name].append(tasks[name](y))
    t = {k: np.asarray(v) for k, v in times.items()}
    vs_plain, vs_same = t["surface"] / t["plain"], t["surface"] / t["same"]
    n_points = grid * len(t["surface"])
    return {
        "per_point_s": float(t["surface"].sum() / n_points), "eager_pass_s": float(t["plain"].sum() / n_points),
        "eager_pass_same_layout_s": float(t["same"].sum() / n_points),
        "overhead_ratio": float(np.median(vs_plain)),
        "overhead_ratio_iqr": [float(q) for q in np.percentile(vs_plain, [25, 75])],
        "overhead_ratio_same_layout": float(np.median(vs_same)),
        "overhead_ratio_same_layout_iqr": [float(q) for q in np.percentile(vs_same, [25, 75])],
        "overhead_ratio_totals": float(t["surface"].sum() / t["plain"].sum()),
        "timed_points": int(n_points), "fold_bn": int(warm.attrs["fold_bn"]),
    }


def _option_ratios(model, dirs, data, bs: int, layout: str, device, n: int = 15) -> dict:
    """Time per point of each floor-lowering choice over the chosen setup's (lower is better).

    Each variant is timed in turns with the chosen setup (same evaluator code, n points each,
    median of the paired ratios), for the same reason as the overhead ratio. The chosen setup
    folds BatchNorm when the model allows it (the surface's default); ``fold_bn_vs_unfolded``
    is that setup's time over the same setup without folding (refolding at every point included).
    """
    from ..evaluation import Evaluator, eval_mode
    from ..fusion import fold_batchnorm
    from ..params import WeightShifter

    def timer(batch_size: int, precision: str, lay: str, fold: bool = True):
        with channels_last_model(model, lay == "channels_last"):
            with eval_mode(model):
                twin = fold_batchnorm(model, data.inputs[:2].to(device)) if fold else None
            ev = Evaluator(model if twin is None else twin, data, batch_size=batch_size, device=device,
                           precision=precision, channels_last=lay == "channels_last")
            if twin is not None:
                twin.sync()
            ev()

        def per_point() -> float:
            with channels_last_model(model, lay == "channels_last"):
                shifter = WeightShifter(model, dirs)
                t0 = time.perf_counter()
                for k in range(n):
                    shifter.set((0.01 * k, -0.01 * k))
                    if twin is not None:
                        twin.sync()
                    ev()
                shifter.restore()
                return (time.perf_counter() - t0) / n
        per_point.folded = twin is not None
        return per_point

    other = "contiguous" if layout == "channels_last" else "channels_last"
    variants = {"batch_256_vs_measured": (256, "fp32", layout),
                "largest_batch_vs_measured": (len(data), "fp32", layout),
                "bf16_vs_fp32": (bs, "bf16", layout)}
    if data.inputs.dim() == 4:
        variants[f"{other}_vs_{layout}"] = (bs, "fp32", other)
    chosen = timer(bs, "fp32", layout)
    ratios = {}
    for name, spec in variants.items():
        variant = timer(*spec)
        pairs = [(variant(), chosen()) for _ in range(5)]
        ratios[name] = float(np.median([v / c for v, c in pairs]))
    if chosen.folded:
        unfolded = timer(bs, "fp32", layout, fold=False)
        pairs = [(chosen(), unfolded()) for _ in range(5)]
        ratios["fold_bn_vs_unfolded"] = float(np.median([f / u for f, u in pairs]))
    return ratios


def _rtol_work(args: argparse.Namespace, device) -> dict:
    """Samples evaluated by --rtol against the full-data surface, on a trained model (honest CVs)."""
    from ..train import train

    name = args.dataset if len(get_dataset(args.dataset, "train", args.data_root)) >= 4000 else "mnist1d"
    data = get_dataset(name, "train", args.data_root)
    model = _model_for(args.model, data, model_args=getattr(args, 'model_args', None))
    train(model, data, batch_size=128, lr=0.1, epochs=3, progress=False, seed=0)
    model.eval()
    dirs = random_directions(model, 2, seed=0)
    grid = min(args.grid, 11)
    x = y = np.linspace(-1, 1, grid)
    t0 = time.perf_counter()
    full = compute_surface(model, dirs, data, x, y, progress=False, comm=None, device=device)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = compute_surface(model, dirs, data, x, y, rtol=args.rtol, progress=False, comm=None, device=device)
    t_fast = time.perf_counter() - t0
    work_full = len(data) * grid * grid
    work_fast = float(fast["train_samples"].sum())
    within = np.abs(fast["train_loss"] - full["train_loss"]) <= 3 * fast["train_loss_se"] + 1e-12
    return {"rtol": args.rtol, "rtol_dataset": name, "rtol_samples": len(data), "rtol_grid": f"{grid}x{grid}",
            "rtol_work_ratio": work_full / work_fast, "rtol_time_ratio": t_full / t_fast,
            "rtol_within_3se": float(within.mean())}


def run(args: argparse.Namespace) -> dict:
    comm = get_comm()
    threads = configure_threads(comm, 1 if comm is not None else None)
    rank = rank_of(comm)
    device = torch.device(args.device or "cpu")
    data = get_dataset(args.dataset, "train", args.data_root)
    if args.samples:
        data = type(data)(data.inputs[:args.samples], data.targets[:args.samples], data.name, data.num_classes)
    model = _model_for(args.model, data, model_args=getattr(args, 'model_args', None)).to(device)
    dirs = random_directions(model, 2, seed=0)
    inputs = data.inputs.to(device)
    result: dict = {"mode": "surface", "model": args.model, "dataset": args.dataset, "samples": len(data),
                    "grid": f"{args.grid}x{args.grid}", "device": str(device), **machine_info(), "threads": threads}

    if comm is not None:  # speedup: rank 0 alone (1 thread) vs all ranks, same grid, same process group
        x = y = np.linspace(-1, 1, args.grid)
        bs = 256
        compute_surface(model, dirs, data, [0.0], [0.0], progress=False, comm=None, batch_size=bs)
        comm.Barrier()
        t_one = None
        if rank == 0:
            t0 = time.perf_counter()
            compute_surface(model, dirs, data, x, y, progress=False, comm=None, batch_size=bs)
            t_one = time.perf_counter() - t0
        comm.Barrier()
        t0 = time.perf_counter()
        compute_surface(model, dirs, data, x, y, progress=False, comm=comm, batch_size=bs)
        comm.Barrier()
        t_all = time.perf_counter() - t0
        if rank != 0:
            return {}
        size = comm.Get_size()
        result.update({"ranks": size, "one_rank_s": t_one, "all_ranks_s": t_all, "speedup": t_one / t_all,
                       "parallel_efficiency": t_one / t_all / size, "batch_size": bs})
        _print_table(result)
        return result

    plain_bs, scan = measure_batch_size(model, inputs, repeat=args.repeat)
    layout = args.layout if args.layout != "auto" else measure_layout(model, inputs, plain_bs)
    bs = plain_bs
    if layout == "channels_last":  # the evaluator's batch size is measured in the layout it runs in
        with channels_last_model(model):
            bs, _ = measure_batch_size(model, inputs.contiguous(memory_format=torch.channels_last),
                                       repeat=args.repeat)
    fold = {"auto": "auto", "on": True, "off": False}[args.fold_bn]
    timing = _interleaved_overhead(model, dirs, data, inputs, args.grid, bs, layout, plain_bs,
                                   max(1, args.repeat // 2), device, fold)
    per_point = timing["per_point_s"]
    flops_point = forward_flops(model, inputs)
    peak = matmul_peak(device)
    result.update({
        "batch_size": bs, "eager_batch_size": plain_bs, "batch_scan_s": {str(k): round(v, 6) for k, v in scan.items()},
        "points_per_s": 1 / per_point, "samples_per_s": len(data) / per_point, "layout": layout, **timing,
        "flops_per_point": flops_point, "achieved_flops": flops_point / per_point, "matmul_peak_flops": peak,
        "fraction_of_peak": flops_point / per_point / peak,
    })
    result["options"] = _option_ratios(model, dirs, data, bs, layout, device)
    if args.rtol > 0:  # --rtol 0 skips the adaptive-precision comparison (it trains a model first)
        result.update(_rtol_work(args, device))
    _print_table(result)
    return result


def _print_table(r: dict) -> None:
    rows = [(k, v) for k, v in r.items() if not isinstance(v, dict)]
    width = max(len(k) for k, _ in rows)
    print("landscape bench (surface)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v:.4g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
    for k, v in r.items():
        if isinstance(v, dict):
            print(f"  {k}:")
            for kk, vv in v.items():
                print(f"    {kk:<28} {vv:.4g}" if isinstance(vv, float) else f"    {kk:<28} {vv}")
