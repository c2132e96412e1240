"""Curvature over training (Cohen et al. 2021) and the critical batch size (McCandlish et al. 2018).

Both read runs of the steps-to-result setting (same model, data, momentum and target) trained at
one learning rate and measured in the loop by `landscape.track` (`FigureContext.tracked_run`).

``edge_of_stability``: lambda_max against step for several batch sizes on one axis, with the
stability edges 2/lr and 2(1+beta)/lr of (heavy-ball) gradient descent at that learning rate.

``critical_batch``: the batch size McCandlish et al. predict from the gradient noise scale
(B_simple at the first measured step where a run's test error is below the target, median over
runs, bootstrap interval over runs) next to the end of perfect scaling measured by the
steps-to-result grid (B_crit of the fit ``S(B) = S_min (1 + B_crit / B)``, bootstrap interval
over seeds resampled per batch size). Both numbers are reported whether or not they agree.
"""
from __future__ import annotations

import statistics

import numpy as np

from ..critical_batch import b_simple_at_target, bootstrap_b_crit, critical_batch, draw_critical
from . import FigureResult, register_figure
from .common import log_axes

__all__ = ["make_edge", "make_critical", "b_simple_at_target", "bootstrap_b_crit"]


def _tracked(ctx) -> dict[int, list[dict]]:
    t = ctx.scale.tracking
    return {b: [ctx.tracked_run(b, seed) for seed in t.seeds] for b in t.batch_sizes}


@register_figure("edge_of_stability", "Top Hessian eigenvalue over training for several batch sizes, against the "
                                      "stability edges 2/lr and 2(1+beta)/lr")
def make_edge(ctx) -> FigureResult:
    if not ctx.is_root or ctx.scale.tracking is None:
        return FigureResult()
    from ..plot.canvas import new_figure
    from ..track import edge_lines, series

    s, t = ctx.scale.scaling, ctx.scale.tracking
    runs = _tracked(ctx)
    fig = new_figure((8.6, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    numbers: dict = {"lr": t.lr, "momentum": s.momentum, "edges": edge_lines(t.lr, s.momentum), "runs": {}}
    findings = []
    for k, (b, members) in enumerate(runs.items()):
        color = f"C{k}"
        curves = []
        for run in members:
            steps, lam = series(run["track"], "lambda_max")
            ax.plot(np.maximum(steps, 1), lam, "-", color=color, lw=0.7, alpha=0.45)
            curves.append(lam)
        n = min(len(c) for c in curves)
        med = np.median(np.stack([c[:n] for c in curves]), axis=0)
        ax.plot(np.maximum(steps[:n], 1), med, "o-", ms=3, color=color, lw=1.8,
                label=f"batch {b} (median of {len(members)} seeds)")
        final = [float(c[-1]) for c in curves]
        peak = [float(np.max(c)) for c in curves]
        numbers["runs"][str(b)] = {"final_lambda_max": final, "peak_lambda_max": peak,
                                   "hvps_warm": [sum(p["lambda_max_hvps"] for p in r["track"]["points"]) for r in members]}
        findings.append(f"batch {b}: peak lambda_max {statistics.median(peak):.3g} (median over seeds; "
                        f"{min(peak):.3g}-{max(peak):.3g}), final {statistics.median(final):.3g}, against 2/lr = "
                        f"{2 / t.lr:.3g} and 2(1+beta)/lr = {2 * (1 + s.momentum) / t.lr:.3g}")
    for name, value in edge_lines(t.lr, s.momentum).items():
        ax.axhline(value, color="0.25", ls="--" if name == "2/lr" else ":", lw=1.2, label=f"{name} = {value:.3g}")
    log_axes(ax, "optimizer step (step 0 drawn at 1)", r"top Hessian eigenvalue $\lambda_{max}$ of the train loss")
    ax.set_title(f"{s.model} on {s.dataset}, SGD lr {t.lr:g}, momentum {s.momentum:g}: sharpness over training "
                 f"(Cohen et al. 2021)", fontsize=10)
    return FigureResult(paths=ctx.save(fig, "edge_of_stability"), numbers=numbers, findings=findings)


@register_figure("critical_batch", "Critical batch size: the gradient noise scale's prediction against the end of "
                                   "perfect scaling measured by steps to result")
def make_critical(ctx) -> FigureResult:
    if ctx.scale.tracking is None:
        return FigureResult()
    tuned = ctx.scale.tracking.tuned_lrs
    finished = ctx.finished_scaling_runs() if not tuned else None  # every rank takes part in the grid's training
    if not ctx.is_root:
        return FigureResult()
    if tuned:
        finished = ctx.tuned_scaling_records()
    s, t = ctx.scale.scaling, ctx.scale.tracking
    cb = critical_batch(finished, _tracked(ctx), s.target_error, n_boot_measured=400, min_batch_sizes=2)
    fig = draw_critical(cb, steps_label=f"{'tuned lr' if tuned else 'best lr'}, median of "
                                        f"{len(t.seeds if tuned else s.seeds)} seeds",
                        right_title=f"noise scale over training at lr {t.lr:g} (big dots: first step below the "
                                    "target, ± SE;\ngaps: |G|² below what the subset resolves)")
    numbers = {**cb.numbers(), "tracked_steps": t.steps, "tracked_lr": t.lr, "samples": t.samples,
               "steps_to_result_runs": ("one run per batch size and seed at the tuned learning rate, stopped at the "
                                        f"target: {dict(tuned)}") if tuned else "the steps-to-result grid"}
    findings = [cb.finding() + f" (tracked runs: {t.steps} steps at lr {t.lr:g}, B_simple on {t.samples} samples)"]
    return FigureResult(paths=ctx.save(fig, "critical_batch"), numbers=numbers, findings=findings)
