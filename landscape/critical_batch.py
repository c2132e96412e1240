"""The critical batch size two ways (McCandlish et al. 2018): predicted by the noise scale, measured by steps.

``predicted``: the gradient noise scale B_simple (`landscape.track`) at the first measured step
where a run's test error is below the target, median over the tracked runs, bootstrap interval
over runs. ``measured``: B_crit of the fit ``S(B) = S_min (1 + B_crit / B)`` to the steps-to-result
curve (`landscape.steps_to_result`), bootstrap interval over seeds resampled per batch size.
Both are reported whether or not they agree. `landscape figures critical_batch` and
`landscape report` compute them here and draw them with `draw_critical`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import LandscapeError
from .steps_to_result import ScalingFit, StepsToResult, first_crossing, fit_scaling, steps_to_result

N_BOOT = 1000
MIN_BATCH_SIZES = 3  # a two-parameter fit through fewer points has no residual, so no interval worth the name

Hit = tuple[int, float, float]  # (step, B_simple, its standard error)


def b_simple_at_target(run: Mapping, target: float) -> Hit | None:
    """(step, B_simple, its SE) at the first measured step whose test error is below ``target``, or None.

    ``run`` holds ``track`` (a track.json) and ``history`` (a history.json).
    """
    hit = first_crossing(run["history"]["history"], target)
    if hit is None:
        return None
    for p in run["track"]["points"]:
        if p["step"] >= hit[0]:  # (JSON holds an infinite B_simple or an undefined SE as null)
            return (int(p["step"]), math.inf if p["b_simple"] is None else float(p["b_simple"]),
                    math.nan if p["b_simple_se"] is None else float(p["b_simple_se"]))
    return None


def bootstrap_b_crit(per_seed: Mapping[int, Sequence[float]], n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """B_crit of the scaling fit on steps-to-result curves with each batch size's seeds resampled."""
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


def _ci(samples: np.ndarray, least: int) -> list[float]:
    if len(samples) <= least:
        return [math.nan, math.nan]
    return [float(np.quantile(samples, 0.025)), float(np.quantile(samples, 0.975))]


@dataclass
class CriticalBatch:
    """Both estimates of the critical batch size and what they were read from."""

    target_error: float
    rows: list[StepsToResult]              # batch sizes whose median seed reached the target
    fit: ScalingFit
    measured_ci: list[float]
    n_boot_fits: int
    runs: dict[int, list[Mapping]]         # tracked runs per batch size (track + history)
    at_target: dict[int, list[Hit | None]]
    predicted: float
    predicted_ci: list[float]
    n_predicted: int                       # runs whose finite B_simple at the target entered the median

    @property
    def n_tracked(self) -> int:
        return sum(len(h) for h in self.at_target.values())

    @property
    def reached(self) -> dict[str, int]:
        return {str(b): sum(h is not None for h in hits) for b, hits in self.at_target.items()}

    @property
    def unresolved(self) -> dict[str, int]:
        """Runs whose |G|^2 at the target was below what the subset resolves (B_simple beyond it: left out)."""
        return {str(b): sum(h is not None and not math.isfinite(h[1]) for h in hits)
                for b, hits in self.at_target.items()}

    @property
    def agree(self) -> bool:
        ci = self.measured_ci + self.predicted_ci
        return all(math.isfinite(c) for c in ci) and \
            self.predicted_ci[0] <= self.measured_ci[1] and self.measured_ci[0] <= self.predicted_ci[1]

    def numbers(self) -> dict[str, Any]:
        return {
            "target_error": self.target_error,
            "measured_b_crit": self.fit.b_crit, "measured_b_crit_ci95": self.measured_ci,
            "measured_fit_s_min": self.fit.s_min,
            "measured_steps_to_result": {str(r.batch_size): r.steps for r in self.rows},
            "measured_bootstrap": f"{self.n_boot_fits} fits on seeds resampled per batch size",
            "predicted_b_simple": self.predicted, "predicted_b_simple_ci95": self.predicted_ci,
            "predicted_from": "median over runs of B_simple at each run's first measured step below the target; "
                              "interval: bootstrap over runs",
            "b_simple_at_target": {str(b): [None if h is None else {"step": h[0], "b_simple": h[1], "se": h[2]}
                                            for h in hits] for b, hits in self.at_target.items()},
            "runs_reaching_target": self.reached, "runs_with_unresolved_b_simple": self.unresolved,
            "gradient_variance": "per-sample", "intervals_overlap": self.agree,
        }

    def finding(self) -> str:
        ratio = self.predicted / self.fit.b_crit if math.isfinite(self.predicted) and self.fit.b_crit > 0 else math.nan
        m, p = self.measured_ci, self.predicted_ci
        return (f"measured end of perfect scaling B_crit = {self.fit.b_crit:.0f} (95% bootstrap over seeds "
                f"{m[0]:.0f}-{m[1]:.0f}); predicted B_simple at the target = {self.predicted:.0f} ({p[0]:.0f}-{p[1]:.0f}) "
                f"from {self.n_predicted} of {self.n_tracked} tracked runs; tracked runs reaching the target: "
                + ", ".join(f"batch {b}: {k}" for b, k in self.reached.items())
                + ", of which B_simple exceeded what the subset resolves (|G|^2 estimate <= 0): "
                + ", ".join(f"batch {b}: {k}" for b, k in self.unresolved.items())
                + f"; ratio {ratio:.2g}, intervals {'overlap' if self.agree else 'do not overlap'}")


def critical_batch(records: Sequence[Mapping], runs: Mapping[int, Sequence[Mapping]], target: float, *,
                   n_boot: int = N_BOOT, n_boot_measured: int = 400,
                   min_batch_sizes: int = MIN_BATCH_SIZES) -> CriticalBatch:
    """Both estimates from steps-to-result ``records`` (sweep records: ``config`` + ``curve``) and tracked ``runs``.

    Raises `LandscapeError` saying what is missing when fewer than ``min_batch_sizes`` batch sizes
    reached the target (then there is no curve to fit).
    """
    rows = [r for r in steps_to_result(records, target, group_by=()) if r.reached]
    if len(rows) < min_batch_sizes:
        raise LandscapeError(f"{'no' if not rows else 'only ' + str(len(rows))} batch size(s) reached test error "
                             f"< {target:g} (at the median seed); the steps-to-result fit needs at least "
                             f"{min_batch_sizes}")
    fit = fit_scaling([r.batch_size for r in rows], [r.steps for r in rows])
    per_seed = {r.batch_size: [math.inf if v is None else float(v) for v in r.per_seed.values()] for r in rows}
    boot = bootstrap_b_crit(per_seed, n_boot=n_boot_measured)
    at_target = {b: [b_simple_at_target(r, target) for r in members] for b, members in runs.items()}
    values = np.array([h[1] for hits in at_target.values() for h in hits if h is not None and math.isfinite(h[1])])
    rng = np.random.default_rng(0)
    pboot = np.array([np.median(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)]) \
        if len(values) > 1 else np.array([])
    return CriticalBatch(target_error=target, rows=rows, fit=fit, measured_ci=_ci(boot, 10), n_boot_fits=len(boot),
                         runs={b: list(m) for b, m in runs.items()}, at_target=at_target,
                         predicted=float(np.median(values)) if len(values) else math.nan,
                         predicted_ci=_ci(pboot, 0), n_predicted=len(values))


def draw_critical(cb: CriticalBatch, *, steps_label: str, right_title: str):
    """Left: steps to result against batch size with the fit and both estimates (shaded intervals);
    right: B_simple over training per tracked run, its value at the target marked. A detached Figure."""
    from .figures.common import log_axes, pct
    from .plot.canvas import new_figure
    from .track import series

    fig = new_figure((12.5, 4.8))
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    b = np.array([r.batch_size for r in cb.rows], dtype=float)
    steps = np.array([r.steps for r in cb.rows], dtype=float)
    for r in cb.rows:
        seeds = [v for v in r.per_seed.values() if v is not None]
        ax.plot([r.batch_size] * len(seeds), seeds, "o", ms=3, mfc="white", mec="C0", mew=0.8, zorder=3)
    ax.plot(b, steps, "o-", color="C0", lw=1.8, ms=5, zorder=4,
            label=f"steps to test error < {pct(cb.target_error, 1)} ({steps_label})")
    bb = np.geomspace(b.min() / 1.5, b.max() * 1.5, 100)
    ax.plot(bb, cb.fit.predict(bb), ":", color="C0", lw=1.3, label=r"fit $S_{min}(1 + B_{crit}/B)$")
    for value, ci, color, label in (
            (cb.fit.b_crit, cb.measured_ci, "C0", "measured end of perfect scaling $B_{crit}$"),
            (cb.predicted, cb.predicted_ci, "C3", rf"predicted: $B_{{simple}}$ at the target "
                                                  f"({cb.n_predicted} of {cb.n_tracked} runs)")):
        if math.isfinite(value):
            ax.axvline(value, color=color, lw=1.5, label=f"{label} = {value:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]")
            if all(math.isfinite(c) for c in ci):
                ax.axvspan(*ci, color=color, alpha=0.12, lw=0)
    log_axes(ax, "batch size", "steps to result", legend={"fontsize": 7.5, "loc": "lower left"})
    ax.set_title("critical batch size: predicted (noise scale) and measured (steps to result)", fontsize=10)
    for k, (bs, members) in enumerate(cb.runs.items()):
        for j, run in enumerate(members):
            st, bv = series(run["track"], "b_simple")
            ok = np.isfinite(bv) & (bv > 0)  # gaps where |G|^2 was below what the subset resolves
            ax2.plot(np.maximum(st, 1), np.where(ok, bv, np.nan), ".-", ms=3, color=f"C{k}", lw=1, alpha=0.7,
                     label=f"batch {bs}" if j == 0 else None)
            hit = cb.at_target[bs][j]
            if hit is not None and math.isfinite(hit[1]):
                ax2.errorbar([max(hit[0], 1)], [hit[1]], yerr=[[min(hit[2], hit[1] * 0.99)], [hit[2]]], fmt="o",
                             color=f"C{k}", ms=5, capsize=2)
    log_axes(ax2, "optimizer step (step 0 drawn at 1)", r"$B_{simple} = tr(\Sigma)/|G|^2$ (per-sample gradients)")
    ax2.set_title(right_title, fontsize=10)
    return fig
