"""``landscape bench`` (default mode): how close the surface evaluator runs to a bare forward pass.

Reports, from one process on one machine: points and samples per second; per-point time over
the best warmed-up eager ``model(x)`` pass over the same samples (the overhead ratio, batch
sizes scanned); achieved FLOP/s against the measured matmul peak; each floor-lowering option as
a time ratio; the work saved by ``--rtol`` on a dataset of at least 4,000 samples; and, under
mpirun, the speedup and parallel efficiency over one rank with one thread.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..data import get_dataset
from ..directions import random_directions
from ..evaluation import channels_last_model, measure_batch_size, measure_layout
from ..models import build_model
from ..parallel import configure_threads, get_comm, rank_of
from ..surface import compute_surface
from . import machine_info


def _model_for(name: str, data, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, input_shape=data.input_shape, num_classes=data.num_classes).eval()


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


def _eager_grid_time(model, inputs: torch.Tensor, batch_size: int, n_points: int) -> float:
    """Wall time of ``n_points`` bare ``model(x)`` passes over ``inputs``: the floor of a surface."""
    batches = list(torch.split(inputs, batch_size))
    with torch.inference_mode():
        model(batches[0])
        t0 = time.perf_counter()
        for _ in range(n_points):
            for xb in batches:
                model(xb)
        return time.perf_counter() - t0


def _surface_time(model, dirs, data, grid, repeat: int, **kw) -> tuple[float, object]:
    """Best wall time of a whole surface (no file), after one warm-up point."""
    x = y = np.linspace(-1, 1, grid)
    compute_surface(model, dirs, data, [0.0], [0.0], progress=False, comm=None, **kw)
    best, surf = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        surf = compute_surface(model, dirs, data, x, y, progress=False, comm=None, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, surf


def _option_ratios(model, dirs, data, bs: int, base_point: float, device) -> dict:
    """Time per point of each floor-lowering choice relative to the chosen default (lower is better)."""
    from ..evaluation import Evaluator
    from ..params import WeightShifter

    def per_point(batch_size: int = bs, precision: str = "fp32", n: int = 15) -> float:
        ev = Evaluator(model, data, batch_size=batch_size, device=device, precision=precision)
        shifter = WeightShifter(model, dirs)
        ev()
        t0 = time.perf_counter()
        for k in range(n):
            shifter.set((0.01 * k, -0.01 * k))
            ev()
        shifter.restore()
        return (time.perf_counter() - t0) / n

    ratios = {"batch_256_vs_measured": per_point(batch_size=256) / base_point,
              "largest_batch_vs_measured": per_point(batch_size=len(data)) / base_point,
              "bf16_vs_fp32": per_point(precision="bf16") / base_point}
    if data.inputs.dim() == 4:
        model.to(memory_format=torch.channels_last)
        ratios["channels_last_vs_default"] = per_point() / base_point
        model.to(memory_format=torch.contiguous_format)
    return ratios


def _rtol_work(args: argparse.Namespace, device) -> dict:
    """Samples evaluated by --rtol against the full-data surface, on a trained model (honest CVs)."""
    from ..train import train

    name = args.dataset if len(get_dataset(args.dataset, "train", args.data_root)) >= 4000 else "mnist1d"
    data = get_dataset(name, "train", args.data_root)
    model = _model_for(args.model, data)
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
    model = _model_for(args.model, data).to(device)
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

    bs, scan = measure_batch_size(model, inputs, repeat=args.repeat)
    n_points = args.grid * args.grid
    repeats = max(1, args.repeat // 2)
    # Like for like: the best of `repeats` runs of n_points bare eager passes against the best of
    # `repeats` whole surfaces, so both sides see the same noise over the same duration.
    eager = min(_eager_grid_time(model, inputs, bs, n_points) for _ in range(repeats)) / n_points
    layout = measure_layout(model, inputs, bs)
    eager_same = eager
    if layout == "channels_last":
        with channels_last_model(model):
            cl_inputs = inputs.contiguous(memory_format=torch.channels_last)
            eager_same = min(_eager_grid_time(model, cl_inputs, bs, n_points) for _ in range(repeats)) / n_points
    t_surface, surf = _surface_time(model, dirs, data, args.grid, repeats, batch_size=bs, device=device,
                                    layout=layout)
    per_point = t_surface / n_points
    flops_point = forward_flops(model, inputs)
    peak = matmul_peak(device)
    result.update({
        "batch_size": bs, "batch_scan_s": {str(k): round(v, 6) for k, v in scan.items()},
        "points_per_s": n_points / t_surface, "samples_per_s": n_points * len(data) / t_surface,
        "layout": layout, "eager_pass_s": eager, "per_point_s": per_point, "overhead_ratio": per_point / eager,
        "eager_pass_same_layout_s": eager_same, "overhead_ratio_same_layout": per_point / eager_same,
        "flops_per_point": flops_point, "achieved_flops": flops_point / per_point, "matmul_peak_flops": peak,
        "fraction_of_peak": flops_point / per_point / peak,
    })
    result["options"] = _option_ratios(model, dirs, data, bs, per_point, device)
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
