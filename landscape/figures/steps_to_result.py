"""Shallue et al. 2018: optimizer steps to reach a target test error, against batch size.

For every batch size, every learning rate of the grid is trained for the same number of steps;
a trial's steps to result is its first evaluated step below the target, the batch size's is the
best over learning rates (median over seeds). On log-log axes the curve falls with slope -1
while doubling the batch halves the steps (perfect scaling), then flattens (diminishing returns,
then maximal data parallelism). Drawn with the perfect-scaling line through the smallest batch
size, the fit ``S(B) = S_min (1 + B_crit / B)`` with its regimes, and beside it the steps of
every (batch size, learning rate) trial, which shows the best learning rate moving with the batch.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np

from . import FigureResult, register_figure
from .common import pct, plain_log_ticks


def trial_steps(records: list[dict], target: float) -> dict[tuple[int, float], float | None]:
    """Median over seeds of each (batch size, base lr) trial's steps to ``target`` (None: never reached)."""
    from ..steps_to_result import first_crossing

    hits: dict[tuple[int, float], list[float]] = defaultdict(list)
    for r in records:
        c = r["config"]
        hit = first_crossing(r["curve"], target)
        hits[(c["batch_size"], c["base_lr"])].append(math.inf if hit is None else hit[0])
    out = {}
    for key, values in hits.items():
        med = statistics.median(values)
        out[key] = None if math.isinf(med) else float(med)
    return out


@register_figure("steps_to_result", "Shallue et al.: steps to a target test error against batch size, "
                                    "log-log, with the perfect-scaling line")
def make(ctx) -> FigureResult:
    s = ctx.scale.scaling
    finished = ctx.finished_scaling_runs()  # every rank takes part in the training
    if not ctx.is_root:
        return FigureResult()
    from ..plot.canvas import new_figure
    from ..steps_to_result import classify_regimes, fit_scaling, steps_to_result

    rows = [r for r in steps_to_result(finished, s.target_error, group_by=()) if r.reached]
    numbers: dict = {"target_error": s.target_error, "rows": [
        {"batch_size": r.batch_size, "steps": r.steps, "time": r.time, "lr": r.lr, "per_seed": r.per_seed}
        for r in rows]}
    fig = new_figure((12.0, 4.9))
    grid = fig.add_gridspec(1, 2, width_ratios=[1.25, 1.0])
    ax = fig.add_subplot(grid[0])
    findings = []
    if len(rows) >= 2:
        b = np.array([r.batch_size for r in rows], dtype=float)
        steps = np.array([r.steps for r in rows], dtype=float)
        fit = fit_scaling(b, steps)
        lo_b, hi_b = fit.regime_bounds()
        span = (b.min() / 1.6, b.max() * 1.6)
        shades = [(span[0], lo_b, "perfect scaling", "#e5f5e0"), (lo_b, hi_b, "diminishing returns", "#fff7bc"),
                  (hi_b, span[1], "maximal data\nparallelism", "#fee0d2")]
        for left, right, label, color in shades:
            left, right = max(left, span[0]), min(right, span[1])
            if right > left:
                ax.axvspan(left, right, color=color, zorder=0, lw=0)
                ax.text(math.sqrt(left * right), 0.97, label, transform=ax.get_xaxis_transform(), ha="center",
                        va="top", fontsize=7.5, color="0.3")
        for r in rows:
            seeds = [v for v in r.per_seed.values() if v is not None]
            ax.plot([r.batch_size] * len(seeds), seeds, "o", ms=3, mfc="white", mec="C0", mew=0.8, zorder=3)
        ax.plot(b, steps, "o-", color="C0", lw=1.8, ms=5.5, zorder=4,
                label=f"steps to test error < {pct(s.target_error, 1)} (best lr, median of {len(s.seeds)} seeds)")
        bb = np.geomspace(*span, 100)
        ax.plot(bb, steps[0] * b[0] / bb, "--", color="0.35", lw=1.1, label="perfect scaling (slope -1)", zorder=2)
        ax.plot(bb, fit.predict(bb), ":", color="C3", lw=1.4, zorder=2,
                label=rf"fit $S_{{min}}(1 + B_{{crit}}/B)$: $S_{{min}}$={fit.s_min:.0f}, $B_{{crit}}$={fit.b_crit:.0f}")
        for r in rows:
            ax.annotate(f"lr {r.lr:g}", (r.batch_size, r.steps), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=6.5, color="0.3")
        ax.set_xlim(*span)
        ax.set_ylim(steps.min() / 2.2, steps.max() * 3.2)
        segments = classify_regimes(b, steps)
        numbers.update(s_min=fit.s_min, b_crit=fit.b_crit, rms_log_residual=fit.rms_log_residual,
                       segments=[{"from": a, "to": c, "slope": sl, "regime": reg} for a, c, sl, reg in segments])
        perfect = [(a, c, sl) for a, c, sl, reg in segments if reg == "perfect scaling"]
        flat = [(a, c, sl) for a, c, sl, reg in segments if reg == "maximal data parallelism"]
        findings.append("segments (log-log slope): " + ", ".join(f"{a:g}->{c:g}: {sl:.2f}" for a, c, sl, _ in segments))
        findings.append(
            (f"perfect scaling on {len(perfect)} segment(s) ({', '.join(f'{a:g}->{c:g}' for a, c, _ in perfect)})"
             if perfect else "no perfect-scaling segment")
            + "; " + (f"plateau (maximal data parallelism) on {len(flat)} segment(s) "
                      f"({', '.join(f'{a:g}->{c:g}' for a, c, _ in flat)})" if flat else "no plateau segment")
            + f"; fit: B_crit = {fit.b_crit:.0f}, S_min = {fit.s_min:.0f} steps")
    missing = sorted(set(s.batch_sizes) - {r.batch_size for r in rows})
    if missing:
        findings.append(f"batch sizes that never reached the target within {s.steps} steps: {missing}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(s.batch_sizes, [str(v) for v in s.batch_sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("steps to result")
    plain_log_ticks(ax.yaxis)
    ax.grid(True, which="both", color="0.9", lw=0.5)
    ax.legend(fontsize=7.5, frameon=True, framealpha=0.9, loc="lower left")
    ax.set_title(f"steps to test error < {pct(s.target_error, 1)}", fontsize=9.5)

    hax = fig.add_subplot(grid[1])
    table = trial_steps(finished, s.target_error)
    grid_vals = np.full((len(s.lrs), len(s.batch_sizes)), np.nan)
    for (bs, lr), v in table.items():
        if bs in s.batch_sizes and lr in s.lrs and v is not None:
            grid_vals[list(s.lrs).index(lr), list(s.batch_sizes).index(bs)] = v
    import matplotlib.colors as mcolors
    from matplotlib.patches import Rectangle

    hax.set_facecolor("0.85")
    finite = grid_vals[np.isfinite(grid_vals)]
    mesh = hax.pcolormesh(np.arange(len(s.batch_sizes) + 1), np.arange(len(s.lrs) + 1), np.ma.masked_invalid(grid_vals),
                          cmap="viridis_r", norm=mcolors.LogNorm(finite.min(), finite.max()) if finite.size else None)
    plain_log_ticks(fig.colorbar(mesh, ax=hax, label="steps to result (median over seeds)").ax.yaxis)
    for i in range(len(s.lrs)):
        for j in range(len(s.batch_sizes)):
            v = grid_vals[i, j]
            dark = np.isfinite(v) and _luminance(mesh.cmap(mesh.norm(v))) < 0.5
            hax.text(j + 0.5, i + 0.5, "-" if not np.isfinite(v) else f"{v:.0f}", ha="center", va="center",
                     fontsize=7, color="white" if dark else "black")
    for r in rows:
        if r.lr in s.lrs:
            j, i = list(s.batch_sizes).index(r.batch_size), list(s.lrs).index(r.lr)
            hax.add_patch(Rectangle((j, i), 1, 1, fill=False, ec="C3", lw=1.6))
    hax.set_xticks(np.arange(len(s.batch_sizes)) + 0.5, [str(v) for v in s.batch_sizes])
    hax.set_yticks(np.arange(len(s.lrs)) + 0.5, [f"{v:g}" for v in s.lrs])
    hax.set_xlabel("batch size")
    hax.set_ylabel("learning rate")
    hax.set_title("every trial (red: best lr per batch size; -: not reached)", fontsize=9)
    fig.suptitle(f"{s.model} on {s.dataset}: steps to result against batch size (Shallue et al. 2018), SGD momentum "
                 f"{s.momentum:g}, constant lr tuned over {len(s.lrs)} values, {s.steps} steps per trial", fontsize=10.5)
    return FigureResult(paths=ctx.save(fig, "steps_to_result"), numbers=numbers, findings=findings)


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
