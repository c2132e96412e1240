"""Steps to result (Shallue et al. 2018): how many optimizer steps each batch size needs.

For each batch size, each trial's steps to result is the first *measured* step at which its
validation error is strictly below the target; the batch size's steps to result is the fewest
over the tuned trials (learning rates). With several seeds the best-over-lr value is taken per
seed and the median over seeds is reported, so one lucky seed does not make the curve.

The curve has three regimes: perfect scaling (doubling the batch halves the steps: slope -1 on
log-log axes), diminishing returns, and maximal data parallelism (more batch buys no fewer
steps). `classify_regimes` labels each segment between measured batch sizes by its log-log
slope; `fit_scaling` fits the model ``S(B) = S_min * (1 + B_crit / B)`` (McCandlish et al. 2018),
whose slope ``-B_crit / (B + B_crit)`` runs from -1 (B << B_crit) to 0 (B >> B_crit).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import LandscapeError

REGIMES = ("perfect scaling", "diminishing returns", "maximal data parallelism")


def _get(record: Mapping, key: str, default: Any = None) -> Any:
    """A trial's field, from a sweep record's ``config`` or from a flat dict."""
    cfg = record.get("config")
    if isinstance(cfg, Mapping) and key in cfg:
        return cfg[key]
    return record.get(key, default)


def first_crossing(curve: Iterable[Mapping], target: float, metric: str = "test_error"
                   ) -> tuple[int, float | None] | None:
    """(step, train_time) of the first measurement with ``metric < target``, or None if never."""
    for point in sorted(curve, key=lambda p: p["step"]):
        value = point.get(metric)
        if value is not None and not math.isnan(value) and value < target:
            return int(point["step"]), point.get("train_time")
    return None


@dataclass
class StepsToResult:
    """Steps to result at one batch size (None where no trial reached the target)."""

    batch_size: int
    steps: float | None
    time: float | None
    lr: float | None
    per_seed: dict = field(default_factory=dict)
    group: dict = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        return self.steps is not None


def _median_or_none(values: Sequence[float]) -> float | None:
    med = statistics.median(values)  # inf for "not reached" sorts last
    return None if math.isinf(med) else float(med)


def steps_to_result(records: Iterable[Mapping], target: float, metric: str = "test_error",
                    tune_over: Sequence[str] = ("base_lr",), group_by: Sequence[str] = ("weight_decay",)
                    ) -> list[StepsToResult]:
    """Steps to ``target`` per batch size (and per ``group_by`` value), best over ``tune_over``.

    ``records`` are sweep records (``config`` + ``curve``) or flat dicts with ``batch_size``,
    ``base_lr`` (or ``lr``), ``seed`` and ``curve`` (a list of ``{"step", metric, "train_time"}``).
    """
    trials: dict[tuple, dict[Any, list]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if "curve" not in rec:
            raise LandscapeError(f"record {rec.get('name', '?')} has no measured curve to find the target in")
        bs = _get(rec, "batch_size")
        if bs is None:
            raise LandscapeError(f"record {rec.get('name', '?')} has no batch_size")
        group = tuple((k, _get(rec, k)) for k in group_by)
        lr = _get(rec, "base_lr", _get(rec, "lr"))
        hit = first_crossing(rec["curve"], target, metric)
        trials[(group, int(bs))][_get(rec, "seed", 0)].append((hit, lr))
    rows = []
    for (group, bs), seeds in sorted(trials.items(), key=lambda kv: (repr(kv[0][0]), kv[0][1])):
        per_seed, best_lrs, times = {}, [], []
        for seed, hits in sorted(seeds.items()):
            reached = [(h[0], h[1], lr) for h, lr in hits if h is not None]
            if reached:
                step, t, lr = min(reached, key=lambda r: (r[0], r[1] if r[1] is not None else 0.0))
                per_seed[seed] = step
                best_lrs.append(lr)
                times.append(t if t is not None else math.nan)
            else:
                per_seed[seed] = None
        steps = _median_or_none([math.inf if v is None else v for v in per_seed.values()])
        time = None
        if steps is not None:
            finite = [t for t in times if not math.isnan(t)]
            time = float(statistics.median(finite)) if finite else None
        lr = Counter(best_lrs).most_common(1)[0][0] if best_lrs else None
        rows.append(StepsToResult(batch_size=bs, steps=steps, time=time, lr=lr, per_seed=per_seed,
                                  group=dict(group)))
    return rows


def loglog_slopes(batch_sizes: Sequence[float], steps: Sequence[float]) -> np.ndarray:
    """d log(steps) / d log(batch size) between consecutive measured batch sizes."""
    b = np.log(np.asarray(batch_sizes, dtype=float))
    s = np.log(np.asarray(steps, dtype=float))
    order = np.argsort(b)
    b, s = b[order], s[order]
    if np.any(np.diff(b) == 0):
        raise LandscapeError("batch sizes must be distinct to compute slopes")
    return np.diff(s) / np.diff(b)


def regime_of_slope(slope: float, tol: float = 0.25) -> str:
    """Perfect scaling if the slope is within ``tol`` of -1 (or steeper), maximal data parallelism
    if within ``tol`` of 0 (or rising), diminishing returns in between."""
    if slope <= -1.0 + tol:
        return REGIMES[0]
    if slope >= -tol:
        return REGIMES[2]
    return REGIMES[1]


def classify_regimes(batch_sizes: Sequence[float], steps: Sequence[float], tol: float = 0.25
                     ) -> list[tuple[float, float, float, str]]:
    """``(b_from, b_to, slope, regime)`` for each segment between consecutive batch sizes."""
    b = sorted(batch_sizes)
    slopes = loglog_slopes(batch_sizes, steps)
    return [(b[i], b[i + 1], float(s), regime_of_slope(float(s), tol)) for i, s in enumerate(slopes)]


@dataclass
class ScalingFit:
    """``S(B) = s_min * (1 + b_crit / B)``, fitted in log space (relative errors)."""

    s_min: float
    b_crit: float
    rms_log_residual: float

    def predict(self, batch_size: float | np.ndarray) -> float | np.ndarray:
        return self.s_min * (1.0 + self.b_crit / np.asarray(batch_size, dtype=float))

    def slope(self, batch_size: float | np.ndarray) -> float | np.ndarray:
        b = np.asarray(batch_size, dtype=float)
        return -self.b_crit / (b + self.b_crit)

    def regime(self, batch_size: float, tol: float = 0.25) -> str:
        return regime_of_slope(float(self.slope(batch_size)), tol)

    def regime_bounds(self, tol: float = 0.25) -> tuple[float, float]:
        """Batch sizes where perfect scaling ends and maximal data parallelism begins."""
        return self.b_crit * tol / (1 - tol), self.b_crit * (1 - tol) / tol


def fit_scaling(batch_sizes: Sequence[float], steps: Sequence[float]) -> ScalingFit:
    """Least squares on log S over (s_min, b_crit) > 0, started from the linear fit S = a + c / B."""
    from scipy.optimize import least_squares

    b = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    ok = np.isfinite(s) & (s > 0) & (b > 0)
    b, s = b[ok], s[ok]
    if len(b) < 2:
        raise LandscapeError("fitting the steps-to-result curve needs at least two batch sizes that reached "
                             "the target")
    design = np.stack([np.ones_like(b), 1.0 / b], axis=1)
    (a, c), *_ = np.linalg.lstsq(design, s, rcond=None)
    a = a if a > 0 else s.min()
    bc = c / a if c > 0 else b.min()
    x0 = np.log([a, bc])

    def residual(theta: np.ndarray) -> np.ndarray:
        s_min, b_crit = np.exp(theta)
        return np.log(s_min * (1 + b_crit / b)) - np.log(s)

    sol = least_squares(residual, x0, xtol=1e-12, ftol=1e-12)
    s_min, b_crit = np.exp(sol.x)
    rms = float(np.sqrt(np.mean(residual(sol.x) ** 2)))
    return ScalingFit(s_min=float(s_min), b_crit=float(b_crit), rms_log_residual=rms)
