"""``landscape demo``: the whole story on built-in data in a few minutes of CPU.

Trains a small-batch and a large-batch convnet on sklearn's digits, draws each one's 1D and
2D filter-normalized landscape and the line between them, and prints what to look at. Every
step resumes: a rerun reuses trained checkpoints and finished surface points.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .checkpoint import load_checkpoint
from .data import get_dataset
from .surface import Surface
from .workflow import SurfaceJob, run_surface_job


@dataclass(frozen=True)
class DemoRun:
    name: str
    batch_size: int
    lr: float
    epochs: int
    weight_decay: float = 0.0


SMALL = DemoRun("small_batch", batch_size=16, lr=0.05, epochs=15)
LARGE = DemoRun("large_batch", batch_size=1024, lr=0.2, epochs=60)


def _train(run: DemoRun, out: Path, seed: int, progress: bool) -> Path:
    from .train import init_model, train

    path = out / run.name / "model.pt"
    wanted = {"batch_size": run.batch_size, "lr": run.lr, "budget_epochs": run.epochs,
              "weight_decay": run.weight_decay, "seed": seed, "dataset": "digits"}
    if path.exists():
        meta = load_checkpoint(path).meta
        if all(meta.get(k) == v for k, v in wanted.items()):
            return path
    for stale in path.parent.glob("*.h5*"):  # surfaces of an older checkpoint would be refused
        stale.unlink()
    import torch

    train_data, test_data = get_dataset("digits", "train"), get_dataset("digits", "test")
    model = init_model("convnet", train_data, seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # an 11k-parameter net: a second thread only adds synchronisation
    try:
        train(model, train_data, test_data, batch_size=run.batch_size, lr=run.lr, epochs=run.epochs,
              weight_decay=run.weight_decay, seed=seed, out_dir=path.parent, dataset="digits", drop_last=False,
              progress=progress)
    finally:
        torch.set_num_threads(threads)
    return path


def _sharpness_proxy(surface: Surface, alpha: float = 0.25) -> float:
    """Mean train-loss rise at +-alpha along the filter-normalized direction."""
    x, loss = surface.x, surface["train_loss"]
    centre = loss[np.argmin(np.abs(x))]
    sides = [loss[np.argmin(np.abs(x - a))] for a in (-alpha, alpha)]
    return float(np.mean(sides) - centre)


def _top_eigenvalue(ckpt: Path) -> float:
    """Largest Hessian eigenvalue of the train loss (Lanczos, a few dozen Hessian-vector products)."""
    from .hessian import eigenvalues

    return eigenvalues(load_checkpoint(ckpt).model, get_dataset("digits", "train"), k=1).top


def run_demo(out: str | Path = "demo", seed: int = 0, grid: int = 21, progress: bool = True,
             formats: Sequence[str] = ("png",)) -> dict:
    """Train, compute and draw; return a summary dict (also printed by the CLI)."""
    from .plot import render

    start = time.time()
    out = Path(out)
    figures: list[Path] = []
    summary: dict = {"runs": {}, "out": str(out)}
    surfaces_1d = {}
    for run in (SMALL, LARGE):
        ckpt = _train(run, out, seed, progress)
        meta = load_checkpoint(ckpt).meta
        common = dict(ckpt=str(ckpt), dataset="digits", progress=progress, seed=seed)
        s1 = run_surface_job(SurfaceJob(x=np.linspace(-1, 1, 51), out=str(out / run.name), **common))
        s2 = run_surface_job(SurfaceJob(x=np.linspace(-1, 1, grid), y=np.linspace(-1, 1, grid),
                                        out=str(out / run.name), **common))
        surfaces_1d[run.name] = s1
        figures += render(s1, out / run.name, formats=tuple(formats))
        figures += render(s2, out / run.name, kinds=("contour", "contourf", "surface3d"), names=["train_loss"],
                          formats=tuple(formats))
        summary["runs"][run.name] = {
            "checkpoint": str(ckpt), "batch_size": run.batch_size, "lr": run.lr, "epochs": run.epochs,
            "steps": meta.get("step"), "train_loss": meta.get("train_loss"),
            "test_error": 1.0 - float(meta.get("test_acc", float("nan"))),
            "loss_rise_at_0.25": _sharpness_proxy(s1), "top_eigenvalue": _top_eigenvalue(ckpt)}
    line = run_surface_job(SurfaceJob(ckpt=str(out / SMALL.name / "model.pt"), ckpt2=str(out / LARGE.name / "model.pt"),
                                      x=np.linspace(-0.5, 1.5, 41), dataset="digits", out=str(out / "interpolation"),
                                      progress=progress))
    figures += render(line, out / "interpolation", log=True, formats=tuple(formats))
    figures += _comparison_figure(surfaces_1d, out, formats)
    summary["figures"] = [str(p) for p in figures]
    summary["seconds"] = round(time.time() - start, 1)
    return summary


def _comparison_figure(surfaces: dict[str, Surface], out: Path, formats: Sequence[str]) -> list[Path]:
    """Both 1D curves on one axis: the picture the demo exists to show."""
    from .plot.curves import compare_curves

    labels = {SMALL.name: f"small batch ({SMALL.batch_size})", LARGE.name: f"large batch ({LARGE.batch_size})"}
    return compare_curves([(labels[name], s) for name, s in surfaces.items()], out / "comparison",
                          formats=tuple(formats), xlabel=r"$\alpha$ (filter-normalized random direction)",
                          title="digits convnet: the large-batch minimum is sharper")


def format_summary(summary: dict) -> str:
    rows = [f"{'run':<13} {'batch':>6} {'steps':>6} {'train loss':>11} {'test error':>11} {'loss rise @0.25':>16} "
            f"{'top eigenvalue':>15}"]
    for name, r in summary["runs"].items():
        rows.append(f"{name:<13} {r['batch_size']:>6} {r['steps'] or 0:>6} {r['train_loss']:>11.4f} "
                    f"{r['test_error']:>11.2%} {r['loss_rise_at_0.25']:>16.4f} {r['top_eigenvalue']:>15.3f}")
    rows.append(f"\nfigures in {summary['out']}/ ({len(summary['figures'])} files), done in {summary['seconds']} s")
    rows.append("a larger loss rise along the same kind of filter-normalized direction means a sharper minimum")
    return "\n".join(rows)
