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
Every measure is oriented "larger = sharper" (PAC-Bayes reports ``1 / sigma^2``), so a positive
tau means "sharper goes with a larger gap".
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
from .jsonfile import write_json_atomic

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


MEASURES: dict[str, Measure] = {m.name: m for m in [
    Measure("top_eig", _top_eig, "largest Hessian eigenvalue (Lanczos)", {"tol": 1e-4, "seed": 0}, "hessian"),
    Measure("trace", _trace, "Hessian trace (Hutchinson, with standard error)",
            {"n_probes": 30, "method": "hutchinson", "seed": 0}, "hessian"),
    Measure("keskar", _keskar, "Keskar epsilon-sharpness, full space, eps 1e-3",
            {"eps": 1e-3, "subspace_dim": None, "max_iter": 10}, "sharpness"),
    Measure("keskar_p100", _keskar, "Keskar epsilon-sharpness, random 100-dim subspace, eps 1e-3",
            {"eps": 1e-3, "subspace_dim": 100, "max_iter": 10}, "sharpness"),
    Measure("pacbayes", _pacbayes, "PAC-Bayes flatness 1 / sigma^2 (Jiang et al.)", {}, "sharpness"),
    Measure("adaptive", _adaptive, "adaptive worst-case sharpness (Kwon et al.)", {}, "sharpness"),
    Measure("weight_norm", _weight_norm, "L2 norm of all parameters (a norm-based baseline)", {}),
]}
DEFAULT_MEASURES = ("top_eig", "trace", "keskar", "pacbayes")


def resolve_measures(measures: Sequence[str | Measure] | str) -> list[Measure]:
    if isinstance(measures, str):
        measures = [m.strip() for m in measures.split(",") if m.strip()]
    out = []
    for m in measures:
        if isinstance(m, Measure):
            out.append(m)
        elif m in MEASURES:
            out.append(MEASURES[m])
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
        others = [a for a in list(axes) + list(fixed) if a != axis]
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
        result[axis] = float(np.mean(taus)) if taus else math.nan
    vals = [v for v in result.values() if not math.isnan(v)]
    result["overall"] = float(np.mean(vals)) if vals else math.nan
    return result


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
    """(train subset used for measures, full train, test) for a named dataset, loaded once."""
    if dataset not in cache:
        from .data import get_dataset, subset_indices

        train = get_dataset(dataset, "train", data_root)
        test = get_dataset(dataset, "test", data_root)
        idx = subset_indices(len(train), samples, seed=0)
        sub = train if idx is None else (train.inputs[idx], train.targets[idx])
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
        from .data import as_tensors, subset_indices

        x, y = as_tensors(train_data)
        idx = subset_indices(len(x), samples, seed=0)
        sub = (x, y) if idx is None else (x[idx], y[idx])

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
        entry = store.reuse(m.name, settings)
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
    runs: list[dict]
    measures: list[str]
    excluded: list[dict] = field(default_factory=list)

    COLUMNS = ("train_error", "test_error", "error_gap", "loss_gap")

    @property
    def value_columns(self) -> list[str]:
        return list(self.COLUMNS) + self.measures

    def groups(self) -> list[dict]:
        """One row per (batch size, weight decay): ``n`` and ``<col>_mean`` / ``<col>_sd``."""
        by: dict[tuple, list[dict]] = defaultdict(list)
        for r in self.runs:
            by[(r["batch_size"], r["weight_decay"])].append(r)
        out = []
        for (bs, wd), members in sorted(by.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)):
            row = {"batch_size": bs, "weight_decay": wd, "n": len(members)}
            for col in self.value_columns:
                mean, sd, _ = _mean_sd(r.get(col) for r in members)
                row[f"{col}_mean"], row[f"{col}_sd"] = mean, sd
            out.append(row)
        return out

    def taus(self) -> dict[str, dict[str, float]]:
        """Per measure: tau with each gap over all runs, and the granulated tau with the error gap."""
        out = {}
        for m in self.measures:
            entry = {f"tau_{g}": kendall_tau([r[m] for r in self.runs], [r[g] for r in self.runs]) for g in GAPS}
            gran = granulated_tau(self.runs, m, "error_gap")
            entry.update({f"granulated_{k}": v for k, v in gran.items()})
            out[m] = entry
        return out

    # ----- output
    def _group_table(self) -> tuple[list[str], list[list[str]]]:
        head = ["batch size", "weight decay", "n"] + [c.replace("_", " ") for c in self.value_columns]
        rows = []
        for g in self.groups():
            cells = [str(g["batch_size"]), _fmt(g["weight_decay"]), str(g["n"])]
            for c in self.value_columns:
                mean, sd = g[f"{c}_mean"], g[f"{c}_sd"]
                cells.append(_fmt(mean) if math.isnan(sd) else f"{_fmt(mean)} ± {_fmt(sd, 2)}")
            rows.append(cells)
        return head, rows

    def _tau_table(self) -> tuple[list[str], list[list[str]]]:
        head = ["measure", "tau (error gap)", "tau (loss gap)", "granulated: batch size", "granulated: weight decay",
                "granulated: overall"]
        rows = [[m, _fmt(t["tau_error_gap"], 3), _fmt(t["tau_loss_gap"], 3), _fmt(t["granulated_batch_size"], 3),
                 _fmt(t["granulated_weight_decay"], 3), _fmt(t["granulated_overall"], 3)]
                for m, t in self.taus().items()]
        return head, rows

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
            text += "\n\nKendall tau between each measure and the generalization gap\n" + self._plain(*self._tau_table())
        if self.excluded:
            text += f"\n\nexcluded (diverged): {', '.join(r['run'] for r in self.excluded)}"
        return text

    def to_markdown(self) -> str:
        parts = ["# Generalization gap and sharpness", "",
                 f"{len(self.runs)} runs; mean ± sd over seeds; gap = test − train; measures on the training loss "
                 "(weight decay not in the curvature).", "", self._markdown(*self._group_table())]
        if self.measures:
            parts += ["", "## Kendall tau with the generalization gap", "",
                      "Over all runs (tau-b), and granulated (Jiang et al. 2019): the mean tau over runs that "
                      "differ in one hyperparameter only.", "", self._markdown(*self._tau_table())]
            parts += ["", "Measures: " + "; ".join(f"`{m}`: {MEASURES[m].description}" if m in MEASURES else f"`{m}`"
                                                 for m in self.measures) + "."]
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
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)
        return path

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": self.to_csv(out / "report.csv"), "runs_csv": self.to_csv(out / "report_runs.csv", True)}
        md = out / "report.md"
        tmp = md.with_name(f".{md.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_markdown())
        os.replace(tmp, md)
        paths["markdown"] = md
        paths["json"] = write_json_atomic(out / "report.json", {"runs": self.runs, "groups": self.groups(),
                                                                 "taus": self.taus(), "measures": self.measures,
                                                                 "excluded": [r["run"] for r in self.excluded]})
        return paths


def build_report(runs_dir: str | os.PathLike, measures: Sequence[str | Measure] | str = DEFAULT_MEASURES, *,
                 data_root: str | None = None, samples: int | None = None, device: str | None = None,
                 recompute: bool = False, progress: bool = True, train_data: Any = None,
                 test_data: Any = None) -> Report:
    """Measure every final checkpoint under ``runs_dir`` (cached) and assemble the report."""
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
    return Report(runs=rows, measures=[m.name for m in resolved], excluded=excluded)
