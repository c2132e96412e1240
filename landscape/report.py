"""Generalization gap vs sharpness across a batch-size / weight-decay study, with rank correlations.

For every final checkpoint under a runs directory (``*/model.pt``, snapshots excluded) the report
takes the generalization gap (test minus train, in loss and in error, from the checkpoint's meta
or measured if absent) and a configurable set of curvature / sharpness measures of the
*training* loss (weight decay not included in the curvature). Measures are cached per run in
``measures.json``, keyed by the checkpoint's sha256 and the measure's settings, so a rerun only
computes what is new.

Then: a table grouped by (batch size, weight decay) with mean +- sd over seeds, and for each
measure Kendall's tau (tau-b, scipy) with the gap over all runs, plus Jiang et al.'s (2019)
granulated tau: for one hyperparameter axis, tau over the runs that differ *only* in that axis,
averaged over every setting of the other axes (seed included); ``Psi`` averages the axes.
Every measure is oriented "larger = sharper" (PAC-Bayes as ``pacbayes_flatness`` = ``1 / sigma^2``,
the name ``landscape sharpness`` gives it too), so a positive tau means "sharper goes with a larger
gap". Every column carries its unit.

What the numbers can bear: each tau comes with a bootstrap interval (and a p-value for the tau
over all runs); below `MIN_RUNS` runs the report says a correlation is not meaningful; and runs
whose final training loss is outside a band around the sweep's median (`loss_band`) are flagged,
because Jiang et al. compare measures only between models trained to the same cross-entropy.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import LandscapeError
from .registries import register
from .filewrite import write_text_atomic
from .jsonfile import read_json, write_json_atomic

AXES = ("batch_size", "weight_decay")
GAPS = ("error_gap", "loss_gap")
CACHE = "measures.json"


@dataclass(frozen=True)
class Measure:
    """A named sharpness measure: ``fn(model, data, settings) -> (value, stderr or None)``."""

    name: str
    fn: Callable[[nn.Module, Any, Mapping], tuple[float, float | None]]
    description: str
    settings: Mapping = field(default_factory=dict)
    requires: str | None = None  # the landscape submodule it calls, checked before any work starts
    unit: str = ""  # what the value is measured in, shown beside its name in every table


def _scalar(result: Any, *keys: str) -> float:
    """A float out of a measurement result: a number, a result object, a tuple or a dict."""
    for key in keys:
        if isinstance(result, Mapping) and key in result:
            return _scalar(result[key])
        if hasattr(result, key):
            return _scalar(getattr(result, key))
    if isinstance(result, (tuple, list)):
        return _scalar(result[0])
    if isinstance(result, (np.ndarray, torch.Tensor)):
        return float(np.asarray(result.detach().cpu() if isinstance(result, torch.Tensor) else result).ravel()[0])
    return float(result)


def _top_eig(model: nn.Module, data: Any, s: Mapping) -> tuple[float, None]:
    from . import hessian

    res = hessian.eigenvalues(model, data, k=1, which="largest", method="lanczos", tol=s["tol"],
                              seed=s["seed"])
    return _scalar(res, "top", "values"), None


def _trace(model: nn.Module, data: Any, s: Mapping) -> tuple[float, float | None]:
    from . import hessian

    res = hessian.trace(model, data, n_probes=s["n_probes"], method=s["method"], seed=s["seed"])
    stderr = getattr(res, "stderr", None)
    return _scalar(res, "value"), (float(stderr) if stderr is not None else None)


def _keskar(model: nn.Module, data: Any, s: Mapping) -> tuple[float, None]:
    from . import sharpness

    res = sharpness.keskar(model, data, eps=s["eps"], subspace_dim=s["subspace_dim"], max_iter=s["max_iter"])
    return _scalar(res, "value", "sharpness"), None


def _pacbayes(model: nn.Module, data: Any, s: Mapping) -> tuple[float, None]:
    """PAC-Bayes flatness ``1 / sigma^2``: the ``flatness`` of ``landscape sharpness``'s pacbayes part."""
    from . import sharpness

    res = sharpness.pac_bayes_sigma(model, data)
    sigma = _scalar(res, "sigma", "value")
    return (1.0 / sigma ** 2 if sigma > 0 else math.inf), None


def _adaptive(model: nn.Module, data: Any, s: Mapping) -> tuple[float, None]:
    from . import sharpness

    return _scalar(sharpness.adaptive(model, data), "value", "sharpness"), None


def _weight_norm(model: nn.Module, data: Any, s: Mapping) -> tuple[float, None]:
    with torch.no_grad():
        return float(torch.sqrt(sum((p.double() ** 2).sum() for p in model.parameters()))), None


CURVATURE_UNIT = "nats/w²"  # second derivative of a cross-entropy in nats per squared weight unit
MEASURES: dict[str, Measure] = {}
for _measure in [
    Measure("top_eig", _top_eig, "largest Hessian eigenvalue (Lanczos)", {"tol": 1e-4, "seed": 0}, "hessian",
            CURVATURE_UNIT),
    Measure("trace", _trace, "Hessian trace (Hutchinson, with standard error)",
            {"n_probes": 30, "method": "hutchinson", "seed": 0}, "hessian", CURVATURE_UNIT),
    Measure("keskar", _keskar, "Keskar epsilon-sharpness, full space, eps 1e-3: 100 x the loss rise over (1 + loss)",
            {"eps": 1e-3, "subspace_dim": None, "max_iter": 10}, "sharpness", "%"),
    Measure("keskar_p100", _keskar, "Keskar epsilon-sharpness, random 100-dim subspace, eps 1e-3",
            {"eps": 1e-3, "subspace_dim": 100, "max_iter": 10}, "sharpness", "%"),
    Measure("pacbayes_flatness", _pacbayes, "PAC-Bayes flatness 1 / sigma^2 (Jiang et al.; sigma is the value "
            "and this the flatness of landscape sharpness's pacbayes part)", {}, "sharpness", "1/σ², σ in w"),
    Measure("adaptive", _adaptive, "adaptive worst-case sharpness (Kwon et al.): loss rise", {}, "sharpness",
            "nats"),
    Measure("weight_norm", _weight_norm, "L2 norm of all parameters (a norm-based baseline)", {}, None, "w"),
]:
    register(MEASURES, _measure.name, _measure, "report measure")
del _measure
ALIASES = {"pacbayes": "pacbayes_flatness"}  # the name reports used before it said which PAC-Bayes quantity
DEFAULT_MEASURES = ("top_eig", "trace", "keskar", "pacbayes_flatness")
# Units of the report's own columns: errors as fractions of the set, cross-entropy in nats.
COLUMN_UNITS = {"train_loss": "nats", "test_loss": "nats", "loss_gap": "nats", "train_error": "fraction",
                "test_error": "fraction", "error_gap": "fraction"}


def resolve_measures(measures: Sequence[str | Measure] | str) -> list[Measure]:
    if isinstance(measures, str):
        measures = [m.strip() for m in measures.split(",") if m.strip()]
    out = []
    for m in measures:
        if isinstance(m, Measure):
            out.append(m)
        elif ALIASES.get(m, m) in MEASURES:
            out.append(MEASURES[ALIASES.get(m, m)])
        else:
            raise LandscapeError(f"unknown measure {m!r}; available: {', '.join(MEASURES)}")
    for m in out:
        if m.requires and importlib.util.find_spec(f"landscape.{m.requires}") is None:
            raise LandscapeError(f"measure {m.name!r} needs landscape.{m.requires}, which this installation "
                                 f"lacks; choose others with --measures")
    return out


# --------------------------------------------------------------------------- rank correlation
def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties handled); NaN with fewer than two runs or a constant input."""
    from scipy.stats import kendalltau

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    x, y = x[ok], y[ok]
    if np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(kendalltau(x, y).statistic)


def granulated_tau(rows: Sequence[Mapping], measure: str, gap: str = "error_gap",
                   axes: Sequence[str] = AXES, fixed: Sequence[str] = ("seed",)) -> dict[str, float]:
    """Jiang et al.'s granulated tau: per axis, the mean tau over groups differing only in that axis.

    Groups with fewer than two distinct values of the axis (or a constant measure) are skipped.
    ``overall`` (their Psi) is the mean over the axes that have a value.
    """
    result = {}
    for axis in axes:
        taus = _group_taus(rows, measure, gap, axis, [a for a in list(axes) + list(fixed) if a != axis])
        result[axis] = float(np.mean(taus)) if taus else math.nan
    vals = [v for v in result.values() if not math.isnan(v)]
    result["overall"] = float(np.mean(vals)) if vals else math.nan
    return result


# --------------------------------------------------------------------------- uncertainty of the correlations
MIN_RUNS = 5
"""Below this many runs the report calls a correlation not meaningful: with 4 runs even tau = +-1 has an
exact two-sided permutation p-value of 2/4! = 0.083, so no ranking of so few runs is evidence at 5%."""
N_BOOT = 2000
CI_LEVEL = 0.95


def _tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair of ``x`` and ``y`` (shape (B, n)) by counting pairs; NaN where undefined."""
    out = np.empty(len(x))
    for start in range(0, len(x), 256):  # (chunk, n, n) sign arrays at a time
        xs, ys = x[start:start + 256], y[start:start + 256]
        sx = np.sign(xs[:, :, None] - xs[:, None, :])
        sy = np.sign(ys[:, :, None] - ys[:, None, :])
        n = xs.shape[1]
        n0 = n * (n - 1) / 2
        s = (sx * sy).sum(axis=(1, 2)) / 2
        tx = ((sx == 0).sum(axis=(1, 2)) - n) / 2
        ty = ((sy == 0).sum(axis=(1, 2)) - n) / 2
        den = np.sqrt((n0 - tx) * (n0 - ty))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + 256] = np.where(den > 0, s / np.where(den > 0, den, 1), np.nan)
    return out


def _percentile_ci(samples: np.ndarray, level: float) -> list[float]:
    samples = samples[np.isfinite(samples)]
    if len(samples) < 10:
        return [math.nan, math.nan]
    a = (1 - level) / 2
    return [float(np.quantile(samples, a)), float(np.quantile(samples, 1 - a))]


def kendall_tau_ci(x: Sequence[float], y: Sequence[float], *, n_boot: int = N_BOOT, level: float = CI_LEVEL,
                   seed: int = 0) -> dict[str, Any]:
    """Kendall's tau-b with its exact or asymptotic p-value (scipy) and a bootstrap percentile interval.

    Runs are resampled with replacement ``n_boot`` times (seeded); resamples where tau is undefined
    (one distinct value) are dropped. ``{"tau", "ci": [lo, hi], "p_value", "n"}``.
    """
    from scipy.stats import kendalltau

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    tau = kendall_tau(x, y)
    if math.isnan(tau):
        return {"tau": math.nan, "ci": [math.nan, math.nan], "p_value": math.nan, "n": int(len(x))}
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    boot = _tau_b_rows(x[idx], y[idx])
    return {"tau": tau, "ci": _percentile_ci(boot, level), "p_value": float(kendalltau(x, y).pvalue), "n": int(len(x))}


def _group_taus(rows: Sequence[Mapping], measure: str, gap: str, axis: str, others: Sequence[str]) -> list[float]:
    groups: dict[tuple, list[Mapping]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(a) for a in others)].append(r)
    taus = []
    for members in groups.values():
        if len({m.get(axis) for m in members}) < 2:
            continue
        t = kendall_tau([m[measure] for m in members], [m[gap] for m in members])
        if not math.isnan(t):
            taus.append(t)
    return taus


def granulated_tau_ci(rows: Sequence[Mapping], measure: str, gap: str = "error_gap", axes: Sequence[str] = AXES,
                      fixed: Sequence[str] = ("seed",), *, n_boot: int = N_BOOT, level: float = CI_LEVEL,
                      seed: int = 0) -> dict[str, dict[str, Any]]:
    """`granulated_tau` with a bootstrap interval per axis and for ``overall``.

    Per axis the granulated tau is a mean over groups (runs that differ only in that axis), so the
    groups are what is resampled; ``overall`` averages the axes' resampled means replicate by
    replicate. ``{axis: {"tau", "ci", "groups"}}``.
    """
    rng = np.random.default_rng(seed)
    result, replicates = {}, []
    for axis in axes:
        others = [a for a in list(axes) + list(fixed) if a != axis]
        taus = np.asarray(_group_taus(rows, measure, gap, axis, others))
        if len(taus) == 0:
            result[axis] = {"tau": math.nan, "ci": [math.nan, math.nan], "groups": 0}
            continue
        boot = taus[rng.integers(0, len(taus), size=(n_boot, len(taus)))].mean(axis=1)
        replicates.append(boot)
        ci = _percentile_ci(boot, level) if len(taus) > 1 else [math.nan, math.nan]
        result[axis] = {"tau": float(taus.mean()), "ci": ci, "groups": int(len(taus))}
    have = [v["tau"] for v in result.values() if not math.isnan(v["tau"])]
    overall = float(np.mean(have)) if have else math.nan
    ci = _percentile_ci(np.mean(replicates, axis=0), level) if replicates and \
        any(v["groups"] > 1 for v in result.values()) else [math.nan, math.nan]
    result["overall"] = {"tau": overall, "ci": ci, "groups": int(sum(v["groups"] for v in result.values()))}
    return result


# --------------------------------------------------------------------------- comparable training loss
BAND_FACTOR = 2.0
BAND_FLOOR = 0.01


def loss_band(train_losses: Sequence[float], factor: float = BAND_FACTOR, floor: float = BAND_FLOOR) -> dict[str, Any]:
    """Which runs reached a comparable training loss (Jiang et al. compare models at the same cross-entropy).

    In the band: final train cross-entropy within ``factor`` of the sweep's median (``median / factor
    <= loss <= median * factor``) or below the absolute ``floor``. ``{"median", "low", "high",
    "floor", "factor", "in_band": [bool per run]}``.
    """
    if not factor > 1:
        raise LandscapeError(f"band factor must be above 1, got {factor}")
    losses = np.asarray(train_losses, dtype=float)
    finite = losses[np.isfinite(losses)]
    median = float(np.median(finite)) if len(finite) else math.nan
    low, high = median / factor, median * factor
    in_band = [bool(np.isfinite(v) and ((low <= v <= high) or v < floor)) for v in losses]
    return {"median": median, "low": low, "high": high, "floor": floor, "factor": factor, "in_band": in_band}


# --------------------------------------------------------------------------- measuring one run
def find_checkpoints(runs_dir: str | os.PathLike) -> list[Path]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise LandscapeError(f"runs directory {str(runs_dir)!r} does not exist")
    found = sorted(p for p in runs_dir.rglob("model.pt") if "snapshots" not in p.relative_to(runs_dir).parts)
    if not found:
        raise LandscapeError(f"no final checkpoints (*/model.pt) under {str(runs_dir)!r}; train some with "
                             "landscape sweep or landscape train --out DIR")
    return found


def _measure_data(dataset: str, data_root: str | None, samples: int | None, cache: dict) -> tuple[Any, Any]:
    """(train subset used for measures, full train, test) for a named dataset, loaded once (a user
    factory's Dataset or DataLoader unread: the measures stream what would not fit)."""
    if dataset not in cache:
        from .batches import data_length, take
        from .data import get_dataset, source_of, subset_indices

        train = source_of(get_dataset(dataset, "train", data_root, lazy=True))
        test = source_of(get_dataset(dataset, "test", data_root, lazy=True))
        sub = take(train, subset_indices(data_length(train), samples, seed=0))
        cache[dataset] = (sub, train, test)
    return cache[dataset]


def measure_checkpoint(path: str | os.PathLike, measures: Sequence[str | Measure] | str = DEFAULT_MEASURES, *,
                       data_root: str | None = None, samples: int | None = None, device: str | None = None,
                       recompute: bool = False, train_data: Any = None, test_data: Any = None,
                       _data_cache: dict | None = None) -> dict:
    """One row of the report: hyperparameters, gaps and measures of the checkpoint at ``path``.

    Measures come from ``measures.json`` beside it when the checkpoint (sha256) and the measure's
    settings are unchanged; new values are written back atomically after each measure.
    """
    from .checkpoint import load_checkpoint
    from .evaluation import evaluate
    from .store import MeasureStore

    path = Path(path)
    ck = load_checkpoint(path, map_location=device or "cpu")
    meta = ck.meta
    store = MeasureStore(path.parent / CACHE, {"sha256": ck.sha256}, container="measures", fresh=recompute)
    if train_data is None:
        dataset = meta.get("dataset")
        if not dataset or dataset == "custom":
            raise LandscapeError(f"{path} does not name a built-in dataset in its meta; pass the data from Python")
        sub, train_data, test_data = _measure_data(dataset, data_root, samples, _data_cache if _data_cache is not None
                                                   else {})
    else:
        from .batches import data_length, take
        from .data import subset_indices

        sub = take(train_data, subset_indices(data_length(train_data), samples, seed=0))

    row: dict[str, Any] = {"run": path.parent.name, "path": str(path)}
    for key in ("batch_size", "weight_decay", "seed", "lr", "optimizer", "dataset", "model", "step", "epoch"):
        row[key] = meta.get(key)
    row["diverged"] = bool(meta.get("diverged", False))
    if all(meta.get(k) is not None for k in ("train_loss", "train_acc", "test_loss", "test_acc")):
        tr_loss, tr_acc, te_loss, te_acc = (meta[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc"))
    else:
        if test_data is None:
            raise LandscapeError(f"{path} has no train/test metrics in its meta and no test data was given")
        tr_loss, tr_acc = evaluate(ck.model, train_data, device=device)
        te_loss, te_acc = evaluate(ck.model, test_data, device=device)
    row.update(train_loss=tr_loss, test_loss=te_loss, train_error=1 - tr_acc, test_error=1 - te_acc,
               loss_gap=te_loss - tr_loss, error_gap=(1 - te_acc) - (1 - tr_acc))
    if row["diverged"]:  # NaN weights: nothing meaningful to measure
        row.update({m.name: math.nan for m in resolve_measures(measures)})
        return row
    settings_extra = {"samples": samples}
    for m in resolve_measures(measures):
        settings = {**dict(m.settings), **settings_extra}
        entry = store.reuse(m.name, settings) or next(
            (store.reuse(a, settings) for a, to in ALIASES.items() if to == m.name and store.reuse(a, settings)), None)
        if entry is None:
            start = time.perf_counter()
            value, stderr = m.fn(ck.model, sub, m.settings)
            entry = {"value": value, "stderr": stderr, "settings": settings, "seconds": time.perf_counter() - start}
            store.put(m.name, entry, settings)
        row[m.name] = math.nan if entry["value"] is None else float(entry["value"])
        row[f"{m.name}_stderr"] = entry.get("stderr")
    return row


# --------------------------------------------------------------------------- the report
def _mean_sd(values: Iterable[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else math.nan), len(v)


def _fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


@dataclass
class Report:
    """The runs, their measures and the statistics drawn from them.

    `to_dict` is the whole report as plain data (what ``report.json`` holds and what renderers
    read); the text, Markdown and CSV outputs are views of it.
    """

    runs: list[dict]
    measures: list[str]
    excluded: list[dict] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)  # measure name -> unit ("" when not given)
    min_runs: int = MIN_RUNS
    band_factor: float = BAND_FACTOR
    band_floor: float = BAND_FLOOR
    n_boot: int = N_BOOT
    ci_level: float = CI_LEVEL
    tracks: dict[str, dict] = field(default_factory=dict)  # run -> its track.json (landscape track), where it has one
    critical: Any = None  # `critical_batch.CriticalBatch` when the runs carry what it needs
    critical_absent: str = ""  # else why not, in one sentence

    COLUMNS = ("train_error", "test_error", "error_gap", "loss_gap")

    def __post_init__(self) -> None:
        band = self.band()
        for r, ok in zip(self.runs, band["in_band"]):
            r["in_loss_band"] = ok

    @property
    def value_columns(self) -> list[str]:
        return list(self.COLUMNS) + self.measures

    def unit(self, column: str) -> str:
        return COLUMN_UNITS.get(column) or self.units.get(column) or \
            (MEASURES[column].unit if column in MEASURES else "")

    @property
    def meaningful(self) -> bool:
        """Whether there are enough runs for a rank correlation to be evidence (`MIN_RUNS`)."""
        return len(self.runs) >= self.min_runs

    def band(self) -> dict[str, Any]:
        return loss_band([r.get("train_loss") for r in self.runs], self.band_factor, self.band_floor)

    def groups(self) -> list[dict]:
        """One row per (batch size, weight decay): ``n`` and ``<col>_mean`` / ``<col>_sd``."""
        by: dict[tuple, list[dict]] = defaultdict(list)
        for r in self.runs:
            by[(r["batch_size"], r["weight_decay"])].append(r)
        out = []
        for (bs, wd), members in sorted(by.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)):
            row = {"batch_size": bs, "weight_decay": wd, "n": len(members),
                   "n_outside_loss_band": sum(not r["in_loss_band"] for r in members)}
            for col in self.value_columns:
                mean, sd, _ = _mean_sd(r.get(col) for r in members)
                row[f"{col}_mean"], row[f"{col}_sd"] = mean, sd
            out.append(row)
        return out

    def taus(self) -> dict[str, dict[str, Any]]:
        """Per measure: tau with each gap over all runs (interval, p-value), over the runs in the training-loss
        band, and the granulated tau with the error gap (intervals)."""
        out = {}
        in_band = [r for r in self.runs if r["in_loss_band"]]
        for i, m in enumerate(self.measures):
            entry: dict[str, Any] = {}
            for g in GAPS:
                t = kendall_tau_ci([r[m] for r in self.runs], [r[g] for r in self.runs], n_boot=self.n_boot,
                                   level=self.ci_level, seed=i)
                entry[f"tau_{g}"], entry[f"tau_{g}_ci"], entry[f"tau_{g}_p"] = t["tau"], t["ci"], t["p_value"]
            entry["n"] = sum(1 for r in self.runs if np.isfinite(r[m]))
            entry["tau_error_gap_in_band"] = kendall_tau([r[m] for r in in_band], [r["error_gap"] for r in in_band])
            entry["n_in_band"] = len(in_band)
            gran = granulated_tau_ci(self.runs, m, "error_gap", n_boot=self.n_boot, level=self.ci_level, seed=i)
            for k, v in gran.items():
                entry[f"granulated_{k}"], entry[f"granulated_{k}_ci"] = v["tau"], v["ci"]
            out[m] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything the report says, as plain data (``report.json``)."""
        band = self.band()
        return {
            "runs": self.runs, "groups": self.groups(), "taus": self.taus(), "measures": self.measures,
            "units": {c: self.unit(c) for c in ("train_loss", "test_loss", *self.value_columns)},
            "descriptions": {m: MEASURES[m].description for m in self.measures if m in MEASURES},
            "statistics": {"n_runs": len(self.runs), "min_runs": self.min_runs, "meaningful": self.meaningful,
                           "ci_level": self.ci_level, "n_boot": self.n_boot,
                           "ci_method": "bootstrap percentile: runs resampled for tau, groups for granulated tau",
                           "p_value": "scipy kendalltau: exact without ties for small n, else asymptotic"},
            "loss_band": {k: v for k, v in band.items() if k != "in_band"},
            "outside_loss_band": [r["run"] for r in self.runs if not r["in_loss_band"]],
            "excluded": [r["run"] for r in self.excluded],
            "tracks": self.track_summary(),
            "critical_batch": self.critical_summary(),
        }

    def critical_summary(self) -> dict[str, Any]:
        """Both estimates of the critical batch size with their intervals, or why they are absent."""
        if self.critical is None:
            return {"absent": self.critical_absent}
        return {**self.critical.numbers(), "finding": self.critical.finding(),
                "steps_to_result": "per batch size the fewest steps over learning rates and weight decays, "
                                   "median over seeds (landscape.steps_to_result)"}

    def track_summary(self) -> dict[str, dict]:
        """Per tracked run: lambda_max at the end and at its peak against the edges, and the last B_simple."""
        from .track import edge_lines

        out = {}
        for run, t in self.tracks.items():
            pts = t.get("points") or []
            if not pts:
                continue
            meta = t.get("run", {})
            out[run] = {"batch_size": meta.get("batch_size"), "lr": meta.get("lr"), "momentum": meta.get("momentum"),
                        "steps": [p["step"] for p in pts][-1], "lambda_max_final": pts[-1]["lambda_max"],
                        "lambda_max_peak": max(p["lambda_max"] for p in pts), "b_simple_final": pts[-1]["b_simple"],
                        "b_simple_final_se": pts[-1]["b_simple_se"], "hvps_saved": t.get("hvps_saved"),
                        **({"edges": edge_lines(float(meta["lr"]), float(meta.get("momentum") or 0.0))}
                           if meta.get("lr") else {})}
        return out

    # ----- output
    def _header(self, column: str) -> str:
        unit = self.unit(column)
        return column.replace("_", " ") + (f" [{unit}]" if unit else " [unit not given]")

    def _group_table(self) -> tuple[list[str], list[list[str]]]:
        head = ["batch size", "weight decay", "n", "outside loss band"] + [self._header(c) for c in self.value_columns]
        rows = []
        for g in self.groups():
            cells = [str(g["batch_size"]), _fmt(g["weight_decay"]), str(g["n"]), str(g["n_outside_loss_band"])]
            for c in self.value_columns:
                mean, sd = g[f"{c}_mean"], g[f"{c}_sd"]
                cells.append(_fmt(mean) if math.isnan(sd) else f"{_fmt(mean)} ± {_fmt(sd, 2)}")
            rows.append(cells)
        return head, rows

    def _tau_table(self) -> tuple[list[str], list[list[str]]]:
        pct = f"{100 * self.ci_level:g}%"
        head = ["measure", f"tau (error gap) [{pct} CI]", "p", f"tau (loss gap) [{pct} CI]", "tau in loss band",
                "granulated: batch size", "granulated: weight decay", f"granulated: overall [{pct} CI]"]

        def ci(t: dict, key: str) -> str:
            lo, hi = t[f"{key}_ci"]
            return _fmt(t[key], 3) + ("" if math.isnan(lo) else f" [{_fmt(lo, 2)}, {_fmt(hi, 2)}]")

        rows = [[f"{m} [{self.unit(m) or 'unit not given'}]", ci(t, "tau_error_gap"), _fmt(t["tau_error_gap_p"], 2),
                 ci(t, "tau_loss_gap"), _fmt(t["tau_error_gap_in_band"], 3), ci(t, "granulated_batch_size"),
                 ci(t, "granulated_weight_decay"), ci(t, "granulated_overall")]
                for m, t in self.taus().items()]
        return head, rows

    def _caveats(self) -> list[str]:
        notes = []
        if not self.meaningful:
            notes.append(f"only {len(self.runs)} run(s): with fewer than {self.min_runs} runs a rank correlation is "
                         f"not meaningful (even tau = ±1 has an exact p-value above 0.05); train more seeds or "
                         "settings")
        out = [r["run"] for r in self.runs if not r["in_loss_band"]]
        if out:
            b = self.band()
            notes.append(f"{len(out)} run(s) outside the training-loss band (final train cross-entropy within "
                         f"{b['factor']:g}x of the median {b['median']:.3g}, or below {b['floor']:g}): "
                         f"{', '.join(out)}; their sharpness is not compared at the same loss (Jiang et al.)")
        return notes

    def _critical_line(self) -> str:
        if self.critical is None:
            return f"not drawn: {self.critical_absent}"
        return ("predicted by the gradient noise scale (McCandlish et al. 2018) against the end of perfect scaling "
                f"measured by steps to result (Shallue et al. 2018): {self.critical.finding()}")

    @staticmethod
    def _plain(head: list[str], rows: list[list[str]]) -> str:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    @staticmethod
    def _markdown(head: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    def format_table(self) -> str:
        text = (f"{len(self.runs)} runs; mean ± sd over seeds (gap = test - train; measures on the training loss)\n"
                + self._plain(*self._group_table()))
        if self.measures:
            text += ("\n\nKendall tau between each measure and the generalization gap "
                     f"({100 * self.ci_level:g}% bootstrap intervals)\n" + self._plain(*self._tau_table()))
        for note in self._caveats():
            text += f"\n\nnote: {note}"
        text += f"\n\ncritical batch size: {self._critical_line()}"
        if self.excluded:
            text += f"\n\nexcluded (diverged): {', '.join(r['run'] for r in self.excluded)}"
        return text

    def to_markdown(self) -> str:
        parts = ["# Generalization gap and sharpness", "",
                 f"{len(self.runs)} runs; mean ± sd over seeds; gap = test − train; measures on the training loss "
                 "(weight decay not in the curvature).", "", self._markdown(*self._group_table())]
        if self.measures:
            parts += ["", "## Kendall tau with the generalization gap", "",
                      "Over all runs (tau-b, with its p-value and a bootstrap percentile interval over resampled "
                      "runs), over the runs in the training-loss band only, and granulated (Jiang et al. 2019): the "
                      "mean tau over runs that differ in one hyperparameter only (interval over resampled groups).",
                      "", self._markdown(*self._tau_table())]
            parts += ["", "Measures: " + "; ".join(f"`{m}` [{self.unit(m) or 'unit not given'}]: "
                                                 f"{MEASURES[m].description}" if m in MEASURES else f"`{m}`"
                                                 for m in self.measures) + "."]
        for note in self._caveats():
            parts += ["", f"**Note:** {note}."]
        line = self._critical_line()
        parts += ["", "## Critical batch size", "", line[0].upper() + line[1:] + "."]
        if self.critical is not None:
            parts += ["", "![](report_critical_batch.png)"]
        if self.excluded:
            parts += ["", f"Excluded (diverged): {', '.join(r['run'] for r in self.excluded)}."]
        return "\n".join(parts) + "\n"

    def to_csv(self, path: str | os.PathLike, per_run: bool = False) -> Path:
        rows = self.runs if per_run else self.groups()
        keys = list(rows[0]) if rows else []
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return write_text_atomic(path, buf.getvalue())

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": self.to_csv(out / "report.csv"), "runs_csv": self.to_csv(out / "report_runs.csv", True)}
        paths["markdown"] = write_text_atomic(out / "report.md", self.to_markdown())
        paths["json"] = write_json_atomic(out / "report.json", self.to_dict())
        if self.tracks:  # lambda_max over training for every tracked run on one axis, against its 2/lr
            from .track import draw_track

            order = sorted(self.tracks, key=lambda r: (self.tracks[r].get("run", {}).get("batch_size") or 0, r))
            labelled = [(f"{r} (batch {self.tracks[r].get('run', {}).get('batch_size')})", self.tracks[r])
                        for r in order]
            paths["tracks"] = draw_track(labelled, out / "report_tracks",
                                         title="curvature and gradient noise over training (landscape track)")[0]
        if self.critical is not None:
            from .critical_batch import draw_critical
            from .plot.canvas import save_figure

            fig = draw_critical(self.critical, steps_label="fewest over lr and weight decay, median over seeds",
                                right_title="noise scale over training (big dots: first step below the target, "
                                            "± SE;\ngaps: |G|² below what the subset resolves)")
            paths["critical_batch"] = save_figure(fig, out / "report_critical_batch")[0]
        return paths


def build_report(runs_dir: str | os.PathLike, measures: Sequence[str | Measure] | str = DEFAULT_MEASURES, *,
                 data_root: str | None = None, samples: int | None = None, device: str | None = None,
                 recompute: bool = False, progress: bool = True, train_data: Any = None,
                 test_data: Any = None, target_error: float | None = None) -> Report:
    """Measure every final checkpoint under ``runs_dir`` (cached) and assemble the report.

    The critical batch size (`landscape.critical_batch`) is read from the runs' ``history.json`` and
    ``track.json`` at ``target_error`` (default: the target the runs were trained with).
    """
    from tqdm.auto import tqdm

    resolved = resolve_measures(measures)
    paths = find_checkpoints(runs_dir)
    cache: dict = {}
    rows, excluded = [], []
    for path in tqdm(paths, desc="report", unit="run", disable=not progress, dynamic_ncols=True):
        row = measure_checkpoint(path, resolved, data_root=data_root, samples=samples, device=device,
                                 recompute=recompute, train_data=train_data, test_data=test_data, _data_cache=cache)
        if row["diverged"] or not all(np.isfinite(row[g]) for g in GAPS):
            excluded.append(row)
        else:
            rows.append(row)
    if not rows:
        raise LandscapeError(f"every run under {str(runs_dir)!r} diverged; nothing to report")
    from .track import TRACK_FILE

    tracks = {r["run"]: read_json(Path(r["path"]).parent / TRACK_FILE) for r in rows}
    tracks = {k: v for k, v in tracks.items() if v}
    critical, absent = _critical_batch(paths, tracks, target_error)
    return Report(runs=rows, measures=[m.name for m in resolved], excluded=excluded,
                  units={m.name: m.unit for m in resolved}, tracks=tracks, critical=critical, critical_absent=absent)


def _critical_batch(paths: Sequence[Path], tracks: Mapping[str, dict], target_error: float | None) -> tuple[Any, str]:
    """`critical_batch.critical_batch` over the runs' histories (steps to result) and tracks (B_simple),
    or None and the reason it cannot be computed."""
    from .critical_batch import critical_batch

    histories = {p.parent.name: read_json(p.parent / "history.json") for p in paths}
    histories = {k: h for k, h in histories.items() if h and h.get("history")}
    if not histories:
        return None, "no run has a history.json with measured test errors (train with landscape sweep or train --out)"
    if target_error is None:
        targets = sorted({h.get("meta", {}).get("target_error") for h in histories.values()} - {None})
        if len(targets) != 1:
            return None, (f"the runs were trained with different target errors ({', '.join(map(str, targets))})"
                          if targets else "the runs were trained without a target test error") + \
                "; pass landscape report --target-error E"
        target_error = float(targets[0])
    tracked: dict[int, list[dict]] = defaultdict(list)
    for name, t in sorted(tracks.items()):
        if name in histories and any("b_simple" in p for p in t.get("points", [])):
            bs = t.get("run", {}).get("batch_size") or histories[name].get("meta", {}).get("batch_size")
            tracked[int(bs)].append({"track": t, "history": histories[name]})
    if not tracked:
        return None, ("no run has a track.json with the gradient noise scale B_simple (train with --track-every N, "
                      "or run landscape track RUN_DIR on a run's snapshots)")
    records = [{"config": h.get("meta", {}), "curve": h["history"], "status": h.get("status")}
               for h in histories.values()]
    try:
        return critical_batch(records, dict(sorted(tracked.items())), target_error), ""
    except LandscapeError as e:
        return None, str(e)
