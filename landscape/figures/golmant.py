"""Golmant et al. 2018: what larger batches cost, in wall-clock time and in total compute, to reach a target.

From the same trials as the steps-to-result figure (best learning rate per batch size and seed):
the training wall-clock time to the target error (evaluations excluded), the examples processed
to reach it (steps x batch size, i.e. total compute; constant while scaling is perfect, rising
after), and the measured time per step, which is what turns steps into seconds on this hardware.
Golmant et al.'s finding: beyond a modest batch size, a larger batch buys no shorter time to
result, only more compute. On one CPU thread a step's cost grows with the batch almost at once,
so the time curve bottoms out early here; a GPU moves that point, not the compute curve.
"""
from __future__ import annotations

import math

import numpy as np

from . import FigureResult, register_figure
from .common import pct, plain_log_ticks


@register_figure("golmant", "Golmant et al.: wall-clock time and total compute to the target against batch size")
def make(ctx) -> FigureResult:
    s = ctx.scale.scaling
    finished = ctx.finished_scaling_runs()  # every rank takes part in the training
    if not ctx.is_root:
        return FigureResult()
    from ..plot.canvas import new_figure
    from ..steps_to_result import first_crossing

    # per (batch size, seed): the best-lr trial's crossing (fewest steps, then least time), as steps_to_result picks it
    best: dict[tuple[int, int], tuple[int, float]] = {}
    for r in finished:
        c = r["config"]
        hit = first_crossing(r["curve"], s.target_error)
        if hit is None or hit[1] is None:
            continue
        key = (c["batch_size"], c["seed"])
        if key not in best or (hit[0], hit[1]) < best[key]:
            best[key] = (hit[0], float(hit[1]))
    per_step = {}
    for r in finished:
        bs = r["config"]["batch_size"]
        per_step.setdefault(bs, []).append(r["train_time"] / max(1, r["final"]["step"]))
    reached = sorted({bs for bs, _ in best})
    if not reached:
        return FigureResult(findings=[f"no batch size reached test error {s.target_error:g} within {s.steps} steps"])

    def med(bs: int, f) -> float:
        return float(np.median([f(v) for (b, _), v in best.items() if b == bs]))

    times = np.array([med(bs, lambda v: v[1]) for bs in reached])
    compute = np.array([med(bs, lambda v: v[0]) * bs for bs in reached], dtype=float)
    sec_step = np.array([np.median(per_step[bs]) for bs in reached])
    n_train = len(ctx.data("train", s.dataset))

    fig = new_figure((13.5, 4.3))
    axes = [fig.add_subplot(1, 3, k + 1) for k in range(3)]
    panels = [(axes[0], times, "training time to result (s)", lambda v: v[1], "C0"),
              (axes[1], compute, "examples processed to result", lambda v: v[0], "C2"),
              (axes[2], sec_step, "seconds per step", None, "C4")]
    for ax, values, label, per_seed, color in panels:
        if per_seed is not None:
            for (bs, _), v in best.items():
                ax.plot(bs, per_seed(v) * (bs if ax is axes[1] else 1), "o", ms=3, mfc="white", mec=color, mew=0.8)
        ax.plot(reached, values, "o-", color=color, lw=1.8, ms=5)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(reached, [str(b) for b in reached])
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        plain_log_ticks(ax.yaxis)
        ax.grid(True, which="both", color="0.9", lw=0.5)
    k_min = int(np.argmin(times))
    axes[0].plot([reached[k_min]], [times[k_min]], "*", ms=14, color="C3", zorder=5,
                 label=f"fastest: batch {reached[k_min]} ({times[k_min]:.2f} s)")
    axes[0].legend(fontsize=7.5, frameon=False)
    axes[0].set_title("wall-clock time to result (median over seeds)", fontsize=9)
    axes[1].axhline(compute[0], color="0.4", ls="--", lw=1.0, label="constant compute (perfect scaling)")
    ep = axes[1].secondary_yaxis("right", functions=(lambda v: v / n_train, lambda e: e * n_train))
    ep.set_ylabel("epochs")
    plain_log_ticks(ep.yaxis)
    axes[1].legend(fontsize=7.5, frameon=False, loc="upper left")
    axes[1].set_title("total compute to result", fontsize=9)
    axes[2].set_title("cost of one step on this machine (all trials)", fontsize=9)
    fig.suptitle(f"{s.model} on {s.dataset}: time and compute to test error < {pct(s.target_error, 1)} against batch "
                 f"size (Golmant et al. 2018); {ctx.device}, {ctx.threads or 'default'} torch thread(s)", fontsize=10.5)
    paths = ctx.save(fig, "golmant")
    numbers = {"batch_sizes": reached, "time_to_result": times.tolist(), "examples_to_result": compute.tolist(),
               "seconds_per_step": sec_step.tolist()}
    growth = compute[-1] / compute[0]
    findings = [
        f"wall-clock time to result is shortest at batch {reached[k_min]} ({times[k_min]:.2f} s); "
        f"{times[0]:.2f} s at batch {reached[0]}, {times[-1]:.2f} s at batch {reached[-1]}",
        f"compute to result grows {growth:.0f}x from batch {reached[0]} to {reached[-1]} "
        f"({compute[0] / n_train:.2f} -> {compute[-1] / n_train:.2f} epochs)"
        + (": larger batches buy no shorter time beyond the fastest one, only more compute"
           if k_min < len(reached) - 1 else ""),
    ]
    if not math.isfinite(growth):
        findings.pop()
    return FigureResult(paths=paths, numbers=numbers, findings=findings)
