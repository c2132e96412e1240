"""Curvature against batch size: the top Hessian eigenvalue and the spectral density of each minimum.

Keskar et al. tie the generalization gap of large batches to sharp minima, i.e. large Hessian
eigenvalues; Ghorbani et al. (2019) show the whole spectrum (stochastic Lanczos quadrature).
For every run of the study: the largest eigenvalue of the training-loss Hessian (Lanczos, weight
decay not included), with every seed drawn; and for the first seed, the SLQ densities of the
smallest, a middle and the largest batch size on one shared eigenvalue axis and kernel width, so
outliers and bulk compare across batch sizes. A caveat the figure cannot remove: cross-entropy curvature also falls as the loss
goes to zero, so a small batch that fits the training set harder looks flatter for that reason too.
"""
from __future__ import annotations

import os

import numpy as np

from . import FigureResult, register_figure
from .common import mean_sd, plain_log_ticks, seeds_of


def _top_eig(ctx, ckpt: str) -> dict:
    from ..hessian import eigenvalues

    def run(ck) -> dict:
        r = eigenvalues(ck.model, ctx.measure_data(), k=1, tol=ctx.scale.lanczos_tol, seed=0, device=ctx.device)
        return {"value": float(r.top), "n_hvps": int(r.n_hvps), "converged": bool(r.converged)}

    return ctx.measure(ckpt, "top_eig", {"tol": ctx.scale.lanczos_tol, "seed": 0,
                                         "samples": ctx.scale.measure_samples}, run)


def _quadrature(ctx, ckpt: str) -> dict:
    from ..hessian import density

    sc = ctx.scale

    def run(ck) -> dict:
        r = density(ck.model, ctx.measure_data(), n_iter=sc.density_iter, n_probes=sc.density_runs, seed=0,
                    device=ctx.device)
        return {"nodes": r.nodes.tolist(), "weights": r.weights.tolist(), "n_hvps": int(r.n_hvps)}

    return ctx.measure(ckpt, "slq", {"n_iter": sc.density_iter, "n_runs": sc.density_runs, "seed": 0,
                                     "samples": sc.measure_samples}, run)


DENSITY_KERNEL = 0.01  # Gaussian kernel width as a share of the spectral range: outliers stay apart, bulks stay smooth


def _spread(batch_sizes) -> list[int]:
    """The smallest, a middle and the largest batch size: three densities read apart, six do not."""
    b = list(batch_sizes)
    return list(dict.fromkeys([b[0], b[len(b) // 2], b[-1]]))


@register_figure("hessian_vs_batch", "Top Hessian eigenvalue and spectral density against batch size")
def make(ctx) -> FigureResult:
    s = ctx.scale.study
    records = ctx.study_records()
    if not ctx.is_root:
        return FigureResult()
    import matplotlib
    from scipy.stats import kendalltau
    from tqdm.auto import tqdm

    from ..hessian import smooth_density
    from ..plot.canvas import new_figure

    tops: dict[tuple, list[float]] = {}
    quads: dict[tuple, dict] = {}
    todo = [(bs, wd, r) for wd in s.weight_decays for bs in s.batch_sizes for r in seeds_of(records, bs, wd)]
    for bs, wd, rec in tqdm(todo, desc="hessian", unit="model", disable=not ctx.progress, leave=False):
        ckpt = os.path.join(rec["run_dir"], "model.pt")
        tops.setdefault((bs, wd), []).append(_top_eig(ctx, ckpt)["value"])
        if rec["config"]["seed"] == s.seeds[0]:
            quads[(bs, wd)] = _quadrature(ctx, ckpt)

    fig = new_figure((5.2 + 4.6 * len(s.weight_decays), 4.4))
    grid = fig.add_gridspec(1, 1 + len(s.weight_decays), width_ratios=[1.15] + [1.0] * len(s.weight_decays))
    ax = fig.add_subplot(grid[0])
    colors = ("C0", "C3", "C2", "C4")
    for k, wd in enumerate(s.weight_decays):
        bss = np.array(s.batch_sizes, dtype=float)
        means = np.array([mean_sd(tops[(bs, wd)])[0] for bs in s.batch_sizes])
        ax.plot(bss, means, "-", color=colors[k], lw=1.6, label=f"WD={wd:g} (mean over {len(s.seeds)} seeds)")
        for bs in s.batch_sizes:
            vals = tops[(bs, wd)]
            ax.plot(np.full(len(vals), bs) * (1 + 0.04 * (k - 0.5)), vals, "o", ms=3.5, color=colors[k], alpha=0.7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(s.batch_sizes, [str(b) for b in s.batch_sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel(r"top Hessian eigenvalue $\lambda_{max}$ (train loss)")
    plain_log_ticks(ax.yaxis)
    ax.set_title("largest eigenvalue of each run (dots: seeds)", fontsize=9)
    ax.grid(True, which="both", color="0.92", lw=0.6)
    ax.legend(fontsize=8, frameon=False)

    shown = _spread(s.batch_sizes)
    nodes = np.concatenate([np.ravel(q["nodes"]) for (bs, _), q in quads.items() if bs in shown])
    lo, hi = float(nodes.min()), float(nodes.max())
    sigma = DENSITY_KERNEL * (hi - lo)
    xs = np.linspace(lo - 0.02 * (hi - lo) - 5 * sigma, hi + 0.02 * (hi - lo) + 5 * sigma, 1500)
    cmap = matplotlib.colormaps["viridis"]
    dens_axes = []
    for k, wd in enumerate(s.weight_decays):
        dax = fig.add_subplot(grid[1 + k], sharey=dens_axes[0] if dens_axes else None)
        dens_axes.append(dax)
        for j, bs in enumerate(shown):
            q = quads[(bs, wd)]
            _, dens, _ = smooth_density(np.asarray(q["nodes"]), np.asarray(q["weights"]), xs, sigma)
            color = cmap(0.85 * j / max(1, len(shown) - 1))
            dax.semilogy(xs, np.maximum(dens, 1e-8), color=color, lw=1.3, label=f"batch {bs}")
            dax.fill_between(xs, 1e-8, np.maximum(dens, 1e-8), color=color, alpha=0.12, lw=0)
        dax.set_ylim(1e-6, None)
        dax.set_xlabel("eigenvalue")
        dax.set_ylabel("density (log scale)")
        dax.set_title(f"Hessian spectral density (SLQ), WD={wd:g}, seed {s.seeds[0]}", fontsize=9)
        dax.grid(True, color="0.92", lw=0.6)
        dax.legend(fontsize=8, frameon=False, title=f"kernel width {sigma:.2g}", title_fontsize=7)
    fig.suptitle(f"{s.model} on {s.dataset}: curvature of the minimum against batch size "
                 f"({s.epochs:g} epochs, lr {s.lr:g}; Hessian of the training loss without the weight-decay term)",
                 fontsize=10.5)
    paths = ctx.save(fig, "hessian_vs_batch")

    numbers = {f"bs{bs}_wd{wd:g}": {"top_eig": v} for (bs, wd), v in tops.items()}
    findings = []
    for wd in s.weight_decays:
        means = [mean_sd(tops[(bs, wd)])[0] for bs in s.batch_sizes]
        rising = all(b >= a for a, b in zip(means, means[1:]))
        pairs = [(bs, v) for bs in s.batch_sizes for v in tops[(bs, wd)]]
        tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic
        findings.append(f"wd={wd:g}: top eigenvalue {means[0]:.3g} at batch {s.batch_sizes[0]} -> {means[-1]:.3g} at "
                        f"batch {s.batch_sizes[-1]} ({means[-1] / means[0]:.3g}x); "
                        f"{'monotone in the batch size' if rising else 'not monotone'}, Kendall tau with batch "
                        f"size over all seeds {tau:.2f}")
    return FigureResult(paths=paths, numbers=numbers, findings=findings)
