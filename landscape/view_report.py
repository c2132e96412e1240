"""The sweep report as one HTML page: the table, Kendall tau (with intervals when the report has them),
and the interactive views of every surface file found in each run's folder.

Kept apart from `landscape.report` so the measuring code stays free of presentation: the page
is built from the report's public data (`Report.groups`, `Report.taus`, `Report.runs`) and shows
whatever fields they carry, so new statistics appear without touching this module.
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import LandscapeError
from .filewrite import write_text_atomic

_INTERVAL = (("_lo", "_hi"), ("_low", "_high"), ("_ci_lo", "_ci_hi"))


def _number(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, (int, float)) or v is None for v in x):
        return f"[{_number(x[0], 3)}, {_number(x[1], 3)}]"
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.{digits}g}"
    return html.escape(str(x))


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """Column names in first-seen order; ``X_mean``/``X_sd`` and ``X_lo``/``X_hi`` fold into column ``X``."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    used: set[str] = set()
    out = []
    for k in keys:
        if k in used:
            continue
        if k.endswith("_mean"):
            base = k[:-5]
            parts = [k] + [f"{base}{s}" for s in ("_sd",) if f"{base}_sd" in keys]
            out.append((base, parts))
            used.update(parts)
            continue
        lo_hi = next(((k + lo, k + hi) for lo, hi in _INTERVAL if k + lo in keys and k + hi in keys), None)
        parts = [k, *lo_hi] if lo_hi else [k]
        used.update(parts)
        out.append((k, parts))
    return out


def _cell(row: Mapping[str, Any], parts: Sequence[str]) -> str:
    values = [row.get(p) for p in parts]
    if len(parts) == 2 and parts[1].endswith("_sd"):
        sd = values[1]
        return _number(values[0]) + ("" if sd is None or (isinstance(sd, float) and math.isnan(sd))
                                     else f" ± {_number(sd, 2)}")
    if len(parts) == 3:
        return f"{_number(values[0], 3)} [{_number(values[1], 3)}, {_number(values[2], 3)}]"
    return _number(values[0])


def html_table(rows: Sequence[Mapping[str, Any]], first: str | None = None) -> str:
    """Rows of dicts as an HTML table; ``first`` names a leading column for dict-of-dict input."""
    if not rows:
        return "<p>(none)</p>"
    cols = _columns(rows)
    head = "".join(f"<th>{html.escape(name.replace('_', ' '))}</th>" for name, _ in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r, parts)}</td>" for _, parts in cols) + "</tr>" for r in rows)
    return f"<table class=\"report\"><tr>{head}</tr>{body}</table>"


def surface_files(run_dir: str | os.PathLike) -> list[Path]:
    """The surface files under a run folder (any depth), direction files and journals left out."""
    import h5py

    out = []
    for p in sorted(Path(run_dir).rglob("*.h5")):
        if p.name.endswith("_directions.h5"):
            continue
        try:
            with h5py.File(p, "r") as f:
                if "xcoordinates" in f:
                    out.append(p)
        except OSError:
            continue
    return out


def report_html(report: Any, out: str | os.PathLike, *, title: str = "Generalization gap and sharpness") -> Path:
    """Write the report page to ``out``: groups table, tau table, and each run's surface views."""
    from .view import as_view_surface, page, view_blocks

    if not hasattr(report, "groups") or not hasattr(report, "runs"):
        raise LandscapeError(f"report_html takes a Report, got {type(report).__name__}")
    parts = [f"<p>{len(report.runs)} runs; mean ± sd over seeds; gap = test − train; measures on the training loss."
             "</p>", "<h3>By batch size and weight decay</h3>", html_table(report.groups())]
    taus = report.taus() if getattr(report, "measures", None) else {}
    if taus:
        rows = [{"measure": m, **t} for m, t in taus.items()]
        parts += ["<h3>Kendall tau with the generalization gap</h3>", html_table(rows)]
    parts += ["<h3>Runs</h3>", html_table([{k: v for k, v in r.items() if not isinstance(v, (dict, list))}
                                          for r in report.runs])]
    excluded = getattr(report, "excluded", None) or []
    if excluded:
        parts.append(f"<p>Excluded (diverged): {html.escape(', '.join(r['run'] for r in excluded))}.</p>")
    parts.append("<h3>Landscapes</h3>")
    per_run = []
    for r in report.runs:
        run_dir = Path(r["path"]).parent if "path" in r else None
        files = surface_files(run_dir) if run_dir is not None and run_dir.is_dir() else []
        per_run.append((r, run_dir, [as_view_surface(f, f"{r.get('run', '')}/{f.stem}") for f in files]))
    views = [v for _, _, vs in per_run for v in vs]
    blocks = iter(view_blocks(views) if views else [])  # one colour scale across every run
    for r, run_dir, run_views in per_run:
        parts.append(f"<h4>{html.escape(str(r.get('run', run_dir)))}</h4>")
        if not run_views:
            parts.append(f"<p>no surface files in {html.escape(str(run_dir))}; make one with <code>landscape plot "
                         f"--ckpt {html.escape(str(run_dir))}/model.pt --out {html.escape(str(run_dir))}/landscape"
                         "</code></p>")
            continue
        parts.append("<div class=\"views\">" + "".join(next(blocks) for _ in run_views) + "</div>")
    return write_text_atomic(out, page(title, "".join(parts), views))
