"""``landscape bench --baseline ll``: the surface evaluator against a loop in the older tool's style.

The older tool (Li et al. 2018, ``loss-landscape``: ``plot_surface.crunch``, ``net_plotter.set_weights``,
``evaluation.eval_loss``) spends per grid point: new weight tensors ``w + x dx + y dy`` assigned to
every parameter's ``.data`` from a stored list, a ``DataLoader`` iterated at batch 128 with the mean
loss times the batch size summed in Python, a reduction of the whole loss and accuracy arrays, and a
rewrite of both arrays into the h5 file. `ll_loop` does exactly that (written here from that
description, not copied), so its per-point time stands for the older tool's; BENCHMARKS.md records
the one check against the real older code run side by side (within 10%).

`run` times `compute_surface` (the CLI's defaults: measured batch size and layout, BatchNorm folded)
and `ll_loop` in turns, one grid row each per round, on the same model, directions and grid, and
prints the median of the per-row time ratios (ours / baseline) with its interquartile range (wall
time, and the process's CPU time, which a machine shared with other work distorts least), for the
digits convnet and for a ResNet-20 at CIFAR shape on synthetic samples.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import machine_info

LL_BATCH_SIZE = 128  # the older tool's --batch_size default
RESNET_SAMPLES = 2000
# Points per timed ResNet row: enough that what a call sets up once (the folded twin's trace, the data's
# layout, the h5 file) weighs per point about as little as in a real surface, where thousands share it.
RESNET_ROW_POINTS = 4


def _reduce_max(comm: Any, array: np.ndarray) -> np.ndarray:
    """The older tool's ``mpi4pytorch.reduce_max`` of the whole array (the array itself without MPI)."""
    if comm is None:
        return array
    from mpi4py import MPI

    array = np.asarray(array, dtype="d")
    total = np.full_like(array, np.finfo(np.float64).min)
    comm.Reduce(array, total, op=MPI.MAX, root=0)
    return total


def ll_loop(model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]], data, x: Sequence[float],
            y: Sequence[float], out: str | os.PathLike, *, points: Sequence[int] | None = None,
            batch_size: int = LL_BATCH_SIZE, comm: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy (fraction) over the ``(len(y), len(x))`` grid, the older tool's way.

    ``points`` are flat indices into the grid (all by default); the h5 file ``out`` holds the
    whole grid's arrays (created if missing) and is rewritten after every point, as the older tool
    does. The model's weights are restored when the loop ends. Without ``comm`` one process
    computes every listed point; with it, the points are split in contiguous slices per rank.
    """
    import h5py
    from torch.utils.data import DataLoader

    from ..data import as_tensors

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    weights = [p.data for p in params]  # net_plotter.get_weights: the tensors themselves
    dx, dy = ([d[n].to(p.device, p.dtype) for n, p in zip(names, params)] for d in directions[:2])
    loader = DataLoader(torch.utils.data.TensorDataset(*as_tensors(data)), batch_size=batch_size, shuffle=False)
    criterion = nn.CrossEntropyLoss()
    device = params[0].device

    shape = (len(y), len(x))
    rank = 0 if comm is None else comm.Get_rank()
    f = h5py.File(out, "a" if rank == 0 else "r")
    if "train_loss" not in f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f["train_loss"] = -np.ones(shape)
        f["train_acc"] = -np.ones(shape)
    losses, accuracies = f["train_loss"][:], f["train_acc"][:]
    xm, ym = np.meshgrid(x, y)
    todo = np.arange(losses.size) if points is None else np.asarray(points)
    if comm is not None:
        todo = np.array_split(todo, comm.Get_size())[rank]
    was_training = model.training
    model.eval()
    try:
        for ind in todo:
            step = (xm.ravel()[ind], ym.ravel()[ind])
            changes = [d0 * step[0] + d1 * step[1] for d0, d1 in zip(dx, dy)]
            for p, w, d in zip(params, weights, changes):  # net_plotter.set_weights
                p.data = w + d
            total_loss, correct, total = 0.0, 0, 0
            with torch.no_grad():  # evaluation.eval_loss
                for inputs, targets in loader:
                    inputs, targets = inputs.to(device), targets.to(device)
                    n = inputs.size(0)
                    total += n
                    outputs = model(inputs)
                    total_loss += criterion(outputs, targets).item() * n
                    _, predicted = torch.max(outputs.data, 1)
                    correct += predicted.eq(targets).sum().item()
            losses.ravel()[ind] = total_loss / total
            accuracies.ravel()[ind] = correct / total
            losses = _reduce_max(comm, losses)
            accuracies = _reduce_max(comm, accuracies)
            if rank == 0:
                f["train_loss"][:] = losses
                f["train_acc"][:] = accuracies
                f.flush()
    finally:
        for p, w in zip(params, weights):
            p.data = w
        model.train(was_training)
        f.close()
    return losses, accuracies


def _workloads(args: argparse.Namespace) -> list[tuple[str, nn.Module, Any, int]]:
    """(label, model, data, points per row): the digits convnet and a ResNet-20 at CIFAR shape."""
    from ..data import LabeledData, get_dataset
    from ..models import build_model

    out = []
    digits = get_dataset("digits", "train", args.data_root)
    if args.samples:
        digits = LabeledData(digits.inputs[:args.samples], digits.targets[:args.samples], "digits", 10)
    torch.manual_seed(0)
    out.append(("convnet/digits", build_model("convnet", input_shape=digits.input_shape, num_classes=10).eval(),
                digits, args.grid))
    g = torch.Generator().manual_seed(0)
    n = args.samples or RESNET_SAMPLES
    synthetic = LabeledData(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g),
                            "synthetic-cifar", 10)
    torch.manual_seed(0)
    out.append(("resnet20/synthetic-cifar", build_model("resnet20", input_shape=(3, 32, 32), num_classes=10).eval(),
                synthetic, min(args.grid, RESNET_ROW_POINTS)))
    return out


def paired_rows(model: nn.Module, directions, data, grid: int, row_points: int, rounds: int,
                device: torch.device, workdir: str, **surface_kw) -> dict:
    """Per-row seconds of `compute_surface` and `ll_loop` in turns (who goes first alternates)."""
    from ..evaluation import channels_last_model, measure_batch_size, measure_layout
    from ..surface import compute_surface

    inputs = data.inputs.to(device)
    bs = surface_kw.pop("batch_size", None) or measure_batch_size(model, inputs)[0]
    layout = surface_kw.pop("layout", None) or measure_layout(model, inputs, bs)
    if layout == "channels_last":
        with channels_last_model(model):
            bs = measure_batch_size(model, inputs.contiguous(memory_format=torch.channels_last))[0]
    xs = np.linspace(-1, 1, grid)
    ys = np.linspace(-1, 1, max(rounds, 2))
    cols = np.linspace(0, grid - 1, row_points).round().astype(int)
    h5 = os.path.join(workdir, "ll.h5")
    kw = dict(progress=False, comm=None, batch_size=bs, device=device, layout=layout, **surface_kw)
    warm = compute_surface(model, directions, data, [0.0], [0.0], **kw)
    ll_loop(model, directions, data, xs, ys, h5, points=[0])
    ours, base, cpu = [], [], {"ours": [], "ll": []}
    for r in range(rounds):
        j = r % len(ys)
        pts = [j * grid + int(i) for i in cols]
        jobs = [("ours", lambda: compute_surface(model, directions, data, xs[cols], [ys[j]], **kw)),
                ("ll", lambda: ll_loop(model, directions, data, xs, ys, h5, points=pts))]
        for name, job in (jobs if r % 2 == 0 else jobs[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            job()
            (ours if name == "ours" else base).append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ratios = np.asarray(ours) / np.asarray(base)
    # CPU time of this process (both loops run in it, on the torch threads set): what a machine
    # shared with other work changes least; with one thread it matches wall time on a quiet one.
    cpu_ratios = np.asarray(cpu["ours"]) / np.asarray(cpu["ll"])
    return {"ratio": float(np.median(ratios)), "ratio_iqr": [float(q) for q in np.percentile(ratios, [25, 75])],
            "cpu_ratio": float(np.median(cpu_ratios)),
            "cpu_ratio_iqr": [float(q) for q in np.percentile(cpu_ratios, [25, 75])],
            "ours_per_point_s": float(np.median(ours)) / len(cols), "ll_per_point_s": float(np.median(base)) / len(cols),
            "points_per_row": len(cols), "rounds": rounds, "batch_size": bs, "layout": layout,
            "fold_bn": int(warm.attrs["fold_bn"]), "samples": len(data)}


def run(args: argparse.Namespace) -> dict:
    from ..directions import random_directions
    from ..parallel import configure_threads

    threads = configure_threads(None, None)
    device = torch.device(args.device or "cpu")
    result: dict = {"mode": "baseline-ll", **machine_info(), "threads": threads}
    with tempfile.TemporaryDirectory(prefix="landscape-bench-ll-") as tmp:
        for label, model, data, row_points in _workloads(args):
            model = model.to(device)
            dirs = random_directions(model, 2, seed=0)
            sub = os.path.join(tmp, label.replace("/", "_"))
            os.makedirs(sub)
            r = paired_rows(model, dirs, data, args.grid, row_points, args.repeat, device, sub)
            result[label] = r
            print(f"{label}: ours / older-tool loop, median of {r['rounds']} paired rows of {r['points_per_row']} "
                  f"points: {r['ratio']:.3f} (IQR {r['ratio_iqr'][0]:.3f}-{r['ratio_iqr'][1]:.3f}); per point "
                  f"{r['ours_per_point_s'] * 1e3:.1f} ms vs {r['ll_per_point_s'] * 1e3:.1f} ms "
                  f"(batch {r['batch_size']}, {r['layout']}, {r['fold_bn']} BN folded; {threads} thread(s)); CPU "
                  f"time ratio {r['cpu_ratio']:.3f} (IQR {r['cpu_ratio_iqr'][0]:.3f}-{r['cpu_ratio_iqr'][1]:.3f})",
                  flush=True)
    return result
