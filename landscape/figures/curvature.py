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

import math
import statistics

import numpy as np

from . import FigureResult, register_figure
from .common import pct, plain_log_ticks

N_BOOT = 1000


def _tracked(ctx) -> dict[int, list[dict]]:
    t = ctx.scale.tracking
    return {b: [ctx.tracked_run(b, seed) for seed in t.seeds] for b in t.batch_sizes}


def _log_axes(ax, xlabel: str, ylabel: str, legend: dict | None = None) -> None:
    for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        scale("log")
        plain_log_ticks(axis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="0.92")
    ax.legend(frameon=False, **(legend or {"fontsize": 8}))


def _series(run: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = run["track"]["points"]
    return np.array([p["step"] for p in pts], dtype=float), np.array([p[key] for p in pts], dtype=float)


@register_figure("edge_of_stability", "Top Hessian eigenvalue over training for several batch sizes, against the "
                                      "stability edges 2/lr and 2(1+beta)/lr")
def make_edge(ctx) -> FigureResult:
    if not ctx.is_root or ctx.scale.tracking is None:
        return FigureResult()
    from ..plot.canvas import new_figure
    from ..track import edge_lines

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
            steps, lam = _series(run, "lambda_max")
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
    _log_axes(ax, "optimizer step (step 0 drawn at 1)", r"top Hessian eigenvalue $\lambda_{max}$ of the train loss")
    ax.set_title(f"{s.model} on {s.dataset}, SGD lr {t.lr:g}, momentum {s.momentum:g}: sharpness over training "
                 f"(Cohen et al. 2021)", fontsize=10)
    return FigureResult(paths=ctx.save(fig, "edge_of_stability"), numbers=numbers, findings=findings)


def b_simple_at_target(run: dict, target: float) -> tuple[int, float, float] | None:
    """(step, B_simple, its SE) at the first measured step whose test error is below ``target``, or None."""
    from ..steps_to_result import first_crossing

    hit = first_crossing(run["history"]["history"], target)
    if hit is None:
        return None
    for p in run["track"]["points"]:
        if p["step"] >= hit[0]:  # (JSON holds an infinite B_simple or an undefined SE as null)
            return (int(p["step"]), math.inf if p["b_simple"] is None else float(p["b_simple"]),
                    math.nan if p["b_simple_se"] is None else float(p["b_simple_se"]))
    return None


def bootstrap_b_crit(per_seed: dict[int, list[float]], n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """B_crit of the scaling fit on steps-to-result curves with each batch size's seeds resampled."""
    from ..steps_to_result import fit_scaling

    rng = np.random.default_rng(seed)
    sizes = sorted(per_seed)
    out = []
    for _ in range(n_boot):
        b, steps = [], []
        for size in sizes:
            values = np.asarray(per_seed[size], dtype=float)
            med = float(np.median(values[rng.integers(0, len(values), len(values))]))
            if math.isfinite(med):
                b.append(size)
                steps.append(med)
        if len(b) >= 3:
            try:
                out.append(fit_scaling(np.array(b, float), np.array(steps)).b_crit)
            except Exception:  # noqa: BLE001 - a degenerate resample has no fit; it is left out
                continue
    return np.asarray(out)


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
    from ..plot.canvas import new_figure
    from ..steps_to_result import fit_scaling, steps_to_result

    s, t = ctx.scale.scaling, ctx.scale.tracking
    rows = [r for r in steps_to_result(finished, s.target_error, group_by=()) if r.reached]
    b = np.array([r.batch_size for r in rows], dtype=float)
    steps = np.array([r.steps for r in rows], dtype=float)
    fit = fit_scaling(b, steps)
    per_seed = {r.batch_size: [math.inf if v is None else float(v) for v in r.per_seed.values()] for r in rows}
    boot = bootstrap_b_crit(per_seed, n_boot=400)
    measured_ci = [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))] if len(boot) > 10 else [math.nan] * 2

    runs = _tracked(ctx)
    at_target = {bs: [b_simple_at_target(r, s.target_error) for r in members] for bs, members in runs.items()}
    values = np.array([v[1] for hits in at_target.values() for v in hits if v is not None and math.isfinite(v[1])])
    n_runs = sum(len(h) for h in at_target.values())
    reached = {str(bs): sum(h is not None for h in hits) for bs, hits in at_target.items()}
    # |G|^2 below what the subset resolves: B_simple beyond the subset size, left out of the median
    unresolved = {str(bs): sum(h is not None and not math.isfinite(h[1]) for h in hits) for bs, hits in at_target.items()}
    predicted = float(np.median(values)) if len(values) else math.nan
    rng = np.random.default_rng(0)
    pboot = np.array([np.median(values[rng.integers(0, len(values), len(values))]) for _ in range(N_BOOT)]) \
        if len(values) > 1 else np.array([])
    predicted_ci = [float(np.quantile(pboot, 0.025)), float(np.quantile(pboot, 0.975))] if len(pboot) else [math.nan] * 2

    fig = new_figure((12.5, 4.8))
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for r in rows:
        seeds = [v for v in r.per_seed.values() if v is not None]
        ax.plot([r.batch_size] * len(seeds), seeds, "o", ms=3, mfc="white", mec="C0", mew=0.8, zorder=3)
    ax.plot(b, steps, "o-", color="C0", lw=1.8, ms=5, zorder=4,
            label=f"steps to test error < {pct(s.target_error, 1)} ("
                  f"{'tuned lr' if tuned else 'best lr'}, median of {len(t.seeds if tuned else s.seeds)} seeds)")
    bb = np.geomspace(b.min() / 1.5, b.max() * 1.5, 100)
    ax.plot(bb, fit.predict(bb), ":", color="C0", lw=1.3, label=r"fit $S_{min}(1 + B_{crit}/B)$")
    for value, ci, color, label in ((fit.b_crit, measured_ci, "C0", "measured end of perfect scaling $B_{crit}$"),
                                    (predicted, predicted_ci, "C3", rf"predicted: $B_{{simple}}$ at the target "
                                                                    f"({len(values)} of {n_runs} runs)")):
        if math.isfinite(value):
            ax.axvline(value, color=color, lw=1.5, label=f"{label} = {value:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]")
            if all(math.isfinite(c) for c in ci):
                ax.axvspan(*ci, color=color, alpha=0.12, lw=0)
    _log_axes(ax, "batch size", "steps to result", legend={"fontsize": 7.5, "loc": "lower left"})
    ax.set_title("critical batch size: predicted (noise scale) and measured (steps to result)", fontsize=10)
    for k, (bs, members) in enumerate(runs.items()):
        for j, run in enumerate(members):
            st, bv = _series(run, "b_simple")
            ok = np.isfinite(bv) & (bv > 0)  # gaps where |G|^2 was below what the subset resolves
            ax2.plot(np.maximum(st, 1), np.where(ok, bv, np.nan), ".-", ms=3, color=f"C{k}", lw=1, alpha=0.7,
                     label=f"batch {bs}" if j == 0 else None)
            hit = at_target[bs][j]
            if hit is not None:
                ax2.errorbar([max(hit[0], 1)], [hit[1]], yerr=[[min(hit[2], hit[1] * 0.99)], [hit[2]]], fmt="o",
                             color=f"C{k}", ms=5, capsize=2)
    _log_axes(ax2, "optimizer step (step 0 drawn at 1)", r"$B_{simple} = tr(\Sigma)/|G|^2$ (per-sample gradients)")
    ax2.set_title(f"noise scale over training at lr {t.lr:g} (big dots: first step below the target, ± SE;\n"
                  "gaps: |G|² below what the subset resolves)", fontsize=10)
    numbers = {
        "target_error": s.target_error,
        "measured_b_crit": fit.b_crit, "measured_b_crit_ci95": measured_ci, "measured_fit_s_min": fit.s_min,
        "measured_bootstrap": f"{len(boot)} fits on seeds resampled per batch size",
        "predicted_b_simple": predicted, "predicted_b_simple_ci95": predicted_ci,
        "predicted_from": "median over runs of B_simple at each run's first measured step below the target; "
                          "interval: bootstrap over runs",
        "b_simple_at_target": {str(bs): [None if h is None else {"step": h[0], "b_simple": h[1], "se": h[2]}
                                         for h in hits] for bs, hits in at_target.items()},
        "runs_reaching_target": reached, "runs_with_unresolved_b_simple": unresolved, "tracked_steps": t.steps,
        "tracked_lr": t.lr,
        "gradient_variance": "per-sample", "samples": t.samples,
        "steps_to_result_runs": ("one run per batch size and seed at the tuned learning rate, stopped at the target: "
                                 f"{dict(tuned)}") if tuned else "the steps-to-result grid",
    }
    ratio = predicted / fit.b_crit if math.isfinite(predicted) and fit.b_crit > 0 else math.nan
    agree = all(math.isfinite(c) for c in measured_ci + predicted_ci) and \
        predicted_ci[0] <= measured_ci[1] and measured_ci[0] <= predicted_ci[1]
    findings = [f"measured end of perfect scaling B_crit = {fit.b_crit:.0f} (95% bootstrap over seeds "
                f"{measured_ci[0]:.0f}-{measured_ci[1]:.0f}); predicted B_simple at the target = {predicted:.0f} "
                f"({predicted_ci[0]:.0f}-{predicted_ci[1]:.0f}) from {len(values)} of {n_runs} tracked runs; runs "
                f"reaching the target within {t.steps} steps at lr {t.lr:g}: "
                + ", ".join(f"batch {bs}: {k}" for bs, k in reached.items())
                + f", of which B_simple exceeded what {t.samples} samples resolve (|G|^2 estimate <= 0): "
                + ", ".join(f"batch {bs}: {k}" for bs, k in unresolved.items())
                + f"; ratio {ratio:.2g}, intervals {'overlap' if agree else 'do not overlap'}"]
    return FigureResult(paths=ctx.save(fig, "critical_batch"), numbers=numbers, findings=findings)
