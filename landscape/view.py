"""Interactive views of surface files: one standalone HTML page per set of surfaces (plotly).

A static PNG shows one angle of one quantity; a researcher wants to turn the surface, read values
under the mouse and flip between train and test. `view_html` writes that page: per 2D file a 3D
surface and its contour map side by side (hover shows x, y, loss and accuracy), per 1D file the
loss and accuracy curves, the training path on the contour when the file carries one, and the
file's attributes in a panel. One selector switches every plot between train/test loss and
accuracy, one box toggles a log scale for losses; several files share one colour scale per
quantity, so a small-batch and a large-batch minimum compare at a glance.

The page works offline: plotly.js is embedded (``include_plotlyjs=True``), nothing is fetched.
Each figure is stored as plotly JSON in a ``<script type="application/json" class="landscape-figure">``
block, so the numbers drawn can be read back (`figure_specs`). A status element
(``#landscape-status``) records errors and says when every plot has rendered, for headless tests.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import LandscapeError
from .filewrite import write_text_atomic

QUANTITIES = ("train_loss", "test_loss", "train_acc", "test_acc")
LABELS = {"train_loss": "train loss", "test_loss": "test loss", "train_acc": "train accuracy (%)",
          "test_acc": "test accuracy (%)"}
# The attributes shown first in a file's panel: what a reader needs to know which landscape this is.
_PANEL_FIRST = ("model", "dataset", "checkpoint", "checkpoint_sha256", "mode", "ckpt2", "ckpt3", "direction_file",
                "norm", "ignore", "seed", "samples", "subset", "loss", "precision", "batch_size", "version")
_LEVELS = 24  # contour levels shared by all files


@dataclass
class ViewSurface:
    """One surface as the page draws it: coordinates, standard quantities (accuracy in percent), path."""

    name: str
    x: np.ndarray
    y: np.ndarray | None
    arrays: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)
    path_xy: tuple[np.ndarray, np.ndarray] | None = None
    path_labels: list[str] = field(default_factory=list)


def _attr_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _trajectory(attrs: Mapping[str, Any]) -> tuple[tuple[np.ndarray, np.ndarray] | None, list[str]]:
    """The projected training path a trajectory surface carries (``[dir_]trajectory_x/_y``), with epochs."""
    get = lambda k: attrs.get(k, attrs.get(f"dir_{k}"))  # noqa: E731 - surfaces store direction attrs as dir_*
    tx, ty = get("trajectory_x"), get("trajectory_y")
    if tx is None or ty is None:
        return None, []
    xs = np.asarray(_attr_json(tx), dtype=np.float64).ravel()
    ys = np.asarray(_attr_json(ty), dtype=np.float64).ravel()
    epochs = get("epochs")
    labels = [str(e) for e in _attr_json(epochs)] if epochs is not None else []
    if len(labels) != len(xs):
        labels = [str(k) for k in range(len(xs))]
    return (xs, ys), labels


def as_view_surface(surface: Any, name: str | None = None) -> ViewSurface:
    """A surface file path or `Surface` as the page needs it (accuracy read in percent)."""
    from .plot.canvas import as_percent
    from .surface import load_surface

    if isinstance(surface, ViewSurface):
        return surface
    if isinstance(surface, (str, os.PathLike)):
        surface = load_surface(surface)
    if not all(hasattr(surface, a) for a in ("x", "y", "arrays")):
        raise LandscapeError(f"a view takes surface file paths or Surfaces, got {type(surface).__name__}")
    path = getattr(surface, "path", None)
    arrays = {}
    for q in QUANTITIES:
        if q in surface.arrays:
            a = np.asarray(surface.arrays[q], dtype=np.float64)
            if q.endswith("_acc"):
                if not np.isfinite(a).any():
                    continue  # regression targets: no accuracy
                a = as_percent(a)
            arrays[q] = a
    if not arrays:
        raise LandscapeError(f"{path or 'the surface'} has no train/test loss or accuracy to view (it has "
                             f"{', '.join(sorted(surface.arrays)) or 'no arrays'})")
    attrs = dict(getattr(surface, "attrs", None) or {})
    path_xy, labels = _trajectory(attrs) if surface.y is not None else (None, [])
    return ViewSurface(name or (Path(path).stem if path else "surface"), np.asarray(surface.x, dtype=np.float64),
                       None if surface.y is None else np.asarray(surface.y, dtype=np.float64), arrays, attrs,
                       path_xy, labels)


# ------------------------------------------------------------------ colour scales
def _log10(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(a)
    out[~np.isfinite(out)] = np.nan  # zero, negative and inf losses have no place on a log scale
    return out


def _shared_range(views: Sequence[ViewSurface], q: str, log: bool) -> tuple[float, float] | None:
    """Min and max of quantity ``q`` over every file: one colour scale for all of them."""
    values = [(_log10(v.arrays[q]) if log else v.arrays[q]) for v in views if q in v.arrays]
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in values]) if values else np.zeros(0)
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        pad = max(abs(lo) * 1e-3, 1e-12)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def log_ticks(lo: float, hi: float, max_ticks: int = 10) -> tuple[list[float], list[str]]:
    """Tick positions (log10 units) and labels (the values) for a log colour bar from ``lo`` to ``hi``."""
    from .plot.levels import log_tick_values

    values = log_tick_values(10 ** lo, 10 ** hi, max_ticks)
    return [math.log10(v) for v in values], [f"{v:.3g}" for v in values]


# ------------------------------------------------------------------ figures
def _hover(name: str, q: str, has_y: bool) -> str:
    split = q.split("_")[0]
    coords = "x %{x:.4g}<br>y %{y:.4g}" if has_y else "x %{x:.4g}"
    return (f"{coords}<br>{split} loss %{{customdata[0]:.5g}}<br>{split} accuracy %{{customdata[1]:.2f}}%"
            f"<extra>{html.escape(name)}</extra>")


def _customdata(v: ViewSurface, q: str) -> np.ndarray:
    """``[loss, accuracy]`` of ``q``'s split at every point (a typed array in the page: NaN survives)."""
    split = q.split("_")[0]
    shape = v.arrays[q].shape
    loss = v.arrays.get(f"{split}_loss", np.full(shape, np.nan))
    acc = v.arrays.get(f"{split}_acc", np.full(shape, np.nan))
    return np.ascontiguousarray(np.stack([loss, acc], axis=-1))


def _plain(text: str) -> str:
    """Matplotlib mathtext in the shared labels (``$\\alpha$``) as plain text for the browser."""
    text = text.replace(r"$\alpha$", "α").replace(r"$\beta$", "β")
    return re.sub(r"\$([^$]*)\$", r"\1", text)


def _figure_2d(v: ViewSurface, ranges: Mapping[tuple[str, bool], tuple[float, float]], stacked: bool,
               axis_labels: tuple[str, str]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = (2, 1) if stacked else (1, 2)
    specs = [[{"type": "scene"}], [{"type": "xy"}]] if stacked else [[{"type": "scene"}, {"type": "xy"}]]
    fig = make_subplots(rows=rows, cols=cols, specs=specs, horizontal_spacing=0.08, vertical_spacing=0.06)
    first = next(iter(v.arrays))
    for q, values in v.arrays.items():
        for log in ((False, True) if q.endswith("_loss") else (None,)):
            z = _log10(values) if log else values
            lo_hi = ranges.get((q, bool(log)))
            if lo_hi is None:
                continue
            lo, hi = lo_hi
            label = ("log10 " if log else "") + LABELS[q]
            if log:
                tickvals, ticktext = log_ticks(lo, hi)
                colorbar = dict(title=dict(text=LABELS[q] + " (log)", side="right"), tickvals=tickvals,
                                ticktext=ticktext)
            else:
                colorbar = dict(title=dict(text=LABELS[q], side="right"))
            visible = q == first and not log
            meta = {"q": q, "log": log}
            custom = _customdata(v, q)
            fig.add_trace(go.Surface(x=v.x, y=v.y, z=z, cmin=lo, cmax=hi, colorscale="Viridis", showscale=False,
                                     customdata=custom, hovertemplate=_hover(v.name, q, True), name=label,
                                     visible=visible, meta=meta), row=1, col=1)
            size = (hi - lo) / _LEVELS
            fig.add_trace(go.Contour(x=v.x, y=v.y, z=z, zmin=lo, zmax=hi, zauto=False, colorscale="Viridis",
                                     contours=dict(start=lo, end=hi, size=size), line=dict(width=0.5),
                                     colorbar=colorbar, customdata=custom, hovertemplate=_hover(v.name, q, True),
                                     name=label, visible=visible, meta=meta),
                          row=2 if stacked else 1, col=1 if stacked else 2)
    if v.path_xy is not None:
        xs, ys = v.path_xy
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers+text", text=v.path_labels, textposition="top right",
                                 line=dict(color="white", width=2), marker=dict(color="red", size=6),
                                 textfont=dict(color="white", size=10), name="training path (epochs)",
                                 hovertemplate="epoch %{text}<br>x %{x:.4g}<br>y %{y:.4g}<extra>path</extra>",
                                 meta={"q": "*", "log": None}, showlegend=False),
                      row=2 if stacked else 1, col=1 if stacked else 2)
        lo_x, hi_x = min(v.x.min(), xs.min()), max(v.x.max(), xs.max())
        lo_y, hi_y = min(v.y.min(), ys.min()), max(v.y.max(), ys.max())
        fig.update_xaxes(range=[lo_x, hi_x])
        fig.update_yaxes(range=[lo_y, hi_y])
    xl, yl = axis_labels
    fig.update_layout(scene=dict(xaxis_title=xl, yaxis_title=yl, zaxis_title="", aspectmode="cube"),
                      margin=dict(l=10, r=10, t=40, b=10), height=900 if stacked else 520,
                      title=dict(text=html.escape(v.name), x=0.01))
    fig.update_xaxes(title_text=xl)
    fig.update_yaxes(title_text=yl, scaleanchor="x" if _comparable(v) else None)
    return fig


def _comparable(v: ViewSurface) -> bool:
    sx, sy = float(np.ptp(v.x)), float(np.ptp(v.y))
    return sx > 0 and sy > 0 and 0.25 <= sx / sy <= 4.0


def _figure_1d(v: ViewSurface, ranges: Mapping[tuple[str, bool], tuple[float, float]], xlabel: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = {"train": "#1f77b4", "test": "#d62728"}
    for q, values in v.arrays.items():
        split, what = q.split("_")
        fig.add_trace(go.Scatter(x=v.x, y=values, name=LABELS[q],
                                 mode="lines+markers", marker=dict(size=4),
                                 line=dict(color=colours[split], dash="solid" if what == "loss" else "dot"),
                                 yaxis="y" if what == "loss" else "y2", customdata=_customdata(v, q),
                                 hovertemplate=_hover(v.name, q, False), meta={"q": "*", "log": None}))
    loss_range = [ranges[k] for k in (("train_loss", False), ("test_loss", False)) if k in ranges]
    acc_range = [ranges[k] for k in (("train_acc", False), ("test_acc", False)) if k in ranges]
    fig.update_layout(xaxis=dict(title=xlabel), height=460, margin=dict(l=10, r=10, t=40, b=10),
                      title=dict(text=html.escape(v.name), x=0.01), legend=dict(orientation="h", y=-0.2),
                      yaxis=dict(title="loss", type="linear"),
                      yaxis2=dict(title="accuracy (%)", overlaying="y", side="right", showgrid=False))
    if loss_range:
        fig.layout.meta = {"loss_range": [min(r[0] for r in loss_range), max(r[1] for r in loss_range)]}
        fig.update_layout(yaxis_range=_padded(fig.layout.meta["loss_range"]))
    if acc_range:
        fig.update_layout(yaxis2_range=_padded([min(r[0] for r in acc_range), max(r[1] for r in acc_range)]))
    return fig


def _padded(r: Sequence[float]) -> list[float]:
    pad = 0.04 * (r[1] - r[0])
    return [r[0] - pad, r[1] + pad]


def build_figures(surfaces: Sequence[Any], names: Sequence[str] | None = None) -> list[tuple[ViewSurface, Any]]:
    """The plotly figure of each surface, with colour scales and axes shared across all of them."""
    from .plot.labels import describe_surface

    if not surfaces:
        raise LandscapeError("a view needs at least one surface file")
    if names is not None and len(names) != len(surfaces):
        raise LandscapeError(f"names has {len(names)} entries for {len(surfaces)} surfaces")
    views = [as_view_surface(s, None if names is None else names[k]) for k, s in enumerate(surfaces)]
    seen: dict[str, int] = {}
    for v in views:  # two random_2d.h5 from different runs: tell them apart
        seen[v.name] = seen.get(v.name, 0) + 1
        if seen[v.name] > 1:
            v.name = f"{v.name} ({seen[v.name]})"
    ranges = {}
    for q in QUANTITIES:
        for log in ((False, True) if q.endswith("_loss") else (False,)):
            for dim in (1, 2):
                r = _shared_range([v for v in views if (v.y is None) == (dim == 1)], q, log)
                if r is not None:
                    ranges[(dim, q, log)] = r
    stacked = len([v for v in views if v.y is not None]) > 1
    out = []
    for v in views:
        text = describe_surface(v.attrs)
        dim = 1 if v.y is None else 2
        r = {(q, log): value for (d, q, log), value in ranges.items() if d == dim}
        if v.y is None:
            out.append((v, _figure_1d(v, r, _plain(text.xlabel))))
        else:
            out.append((v, _figure_2d(v, r, stacked, (_plain(text.xlabel).split("  ")[0],
                                                      _plain(text.ylabel).split("  ")[0]))))
    return out


# ------------------------------------------------------------------ page
def _panel(v: ViewSurface) -> str:
    keys = [k for k in _PANEL_FIRST if k in v.attrs] + sorted(k for k in v.attrs if k not in _PANEL_FIRST)
    rows = []
    for k in keys:
        value = str(v.attrs[k])
        short = value if len(value) <= 90 else value[:87] + "..."
        rows.append(f"<tr><th>{html.escape(k)}</th><td title=\"{html.escape(value)}\">{html.escape(short)}</td></tr>")
    grid = f"{len(v.x)}" if v.y is None else f"{len(v.x)} x {len(v.y)}"
    rows.insert(0, f"<tr><th>grid</th><td>{grid} points</td></tr>")
    return (f"<details class=\"attrs\"><summary>attributes of {html.escape(v.name)}</summary>"
            f"<table>{''.join(rows)}</table></details>")


def _json_block(fig: Any, index: int) -> str:
    import plotly.io as pio

    text = pio.to_json(fig, validate=False).replace("</", "<\\/")  # never closes the script element early
    return f"<script type=\"application/json\" class=\"landscape-figure\" data-index=\"{index}\">{text}</script>"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:12px;color:#222}
.controls{position:sticky;top:0;background:#fff;padding:6px 0;z-index:10;border-bottom:1px solid #ddd}
.controls label{margin-right:18px}
.views{display:flex;flex-wrap:wrap;gap:12px}
.view{flex:1 1 560px;min-width:480px}
.attrs table{border-collapse:collapse;font-size:12px}
.attrs th{text-align:left;padding:1px 8px 1px 0;color:#555;font-weight:normal}
.attrs td{font-family:monospace}
#landscape-status{color:#888;font-size:11px}
table.report{border-collapse:collapse;font-size:13px;margin:8px 0}
table.report th,table.report td{border:1px solid #ccc;padding:2px 6px;text-align:right}
"""

# Errors are caught from the first line on and written to #landscape-status, so a headless browser
# (and a reader) can tell a page that rendered from one that failed.
_GUARD = """
window.landscapeErrors=[];
window.addEventListener('error',function(e){window.landscapeErrors.push(String(e.message||e));});
(function(){var err=console.error;console.error=function(){window.landscapeErrors.push(
  Array.prototype.map.call(arguments,String).join(' '));err.apply(console,arguments);};})();
"""

_SCRIPT = """
(function(){
  var status=document.getElementById('landscape-status');
  function report(msg){status.textContent=msg+(window.landscapeErrors.length?
    ' errors: '+window.landscapeErrors.join(' | '):' errors: none');}
  var divs=[];
  var blocks=document.querySelectorAll('script.landscape-figure');
  var pending=[];
  blocks.forEach(function(b){
    var fig=JSON.parse(b.textContent);
    var div=document.getElementById('landscape-plot-'+b.dataset.index);
    divs.push(div);
    pending.push(Plotly.newPlot(div,fig.data,fig.layout,{responsive:true,displaylogo:false}));
  });
  function apply(){
    var sel=document.getElementById('quantity'), q=sel?sel.value:null;
    var log=document.getElementById('log').checked;
    return Promise.all(divs.map(function(div){
      var vis=div.data.map(function(t){var m=t.meta||{};
        return m.q==='*'||(m.q===q&&(m.log===null||m.log===undefined||m.log===log));});
      var p=Plotly.restyle(div,{visible:vis});
      if(div.layout.yaxis2){
        var r=(div.layout.meta||{}).loss_range;
        var upd={'yaxis.type':log?'log':'linear'};
        if(r){upd['yaxis.range']=log?[Math.log10(Math.max(r[0],1e-300)),Math.log10(r[1])]:[r[0],r[1]];}
        p=p.then(function(){return Plotly.relayout(div,upd);});
      }
      return p;
    }));
  }
  document.querySelectorAll('.control').forEach(function(c){c.addEventListener('change',apply);});
  // view.html#q=test_acc&log=1 opens with those settings (links, screenshots)
  location.hash.replace(/^#/,'').split('&').forEach(function(kv){var p=kv.split('=');
    var sel=document.getElementById('quantity');
    if(p[0]==='q'&&sel&&sel.querySelector('option[value="'+p[1]+'"]')){sel.value=p[1];}
    if(p[0]==='log'){document.getElementById('log').checked=p[1]==='1';}});
  Promise.all(pending).then(apply).then(function(){report('rendered '+divs.length+' plots;');},
    function(e){window.landscapeErrors.push(String(e));report('failed;');});
})();
"""


def _controls(views: Sequence[ViewSurface]) -> str:
    present = [q for q in QUANTITIES if any(q in v.arrays for v in views if v.y is not None)]
    parts = []
    if present:
        options = "".join(f"<option value=\"{q}\">{LABELS[q]}</option>" for q in present)
        parts.append(f"<label>show <select id=\"quantity\" class=\"control\">{options}</select></label>")
    parts.append("<label><input type=\"checkbox\" id=\"log\" class=\"control\"> log scale (losses)</label>")
    if len(views) > 1:
        parts.append("<span>one colour scale for all files</span>")
    return f"<div class=\"controls\">{''.join(parts)} <span id=\"landscape-status\">loading</span></div>"


def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (embedded, so the page works offline)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def view_blocks(surfaces: Sequence[Any], names: Sequence[str] | None = None) -> list[str]:
    """One HTML block per surface (figure and attribute panel), colour scales shared by all of them."""
    blocks = []
    for index, (v, fig) in enumerate(build_figures(surfaces, names)):
        blocks.append(f"<div class=\"view\"><div id=\"landscape-plot-{index}\" class=\"landscape-plot\"></div>"
                      f"{_json_block(fig, index)}{_panel(v)}</div>")
    return blocks


def view_body(surfaces: Sequence[Any], names: Sequence[str] | None = None) -> str:
    """The HTML of the views of ``surfaces`` side by side (controls excluded)."""
    return f"<div class=\"views\">{''.join(view_blocks(surfaces, names))}</div>"


def page(title: str, body: str, views: Sequence[ViewSurface] = ()) -> str:
    """A standalone page: plotly.js embedded, the error guard first, ``body``, then the script that draws."""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
            f"<script>{_GUARD}</script><script type=\"text/javascript\">{plotly_js()}</script></head><body>"
            f"<h2>{html.escape(title)}</h2>{_controls(views)}{body}<script>{_SCRIPT}</script></body></html>")


def view_html(surfaces: Sequence[Any], out: str | os.PathLike, *, names: Sequence[str] | None = None,
              title: str | None = None) -> Path:
    """Write the interactive view of one or more surfaces (paths or `Surface`s) to ``out``; return its path."""
    if isinstance(surfaces, (str, os.PathLike)) or hasattr(surfaces, "arrays"):
        surfaces = [surfaces]
    views = [as_view_surface(s, None if names is None else names[k]) for k, s in enumerate(surfaces)]
    if title is None:
        title = "loss landscape: " + ", ".join(v.name for v in views)
    return write_text_atomic(out, page(title, view_body(views), views))


def figure_specs(html_text: str) -> list[dict]:
    """The plotly figures embedded in a view page, as JSON (the numbers the page draws)."""
    found = re.findall(r'<script type="application/json" class="landscape-figure" data-index="\d+">(.*?)</script>',
                       html_text, flags=re.S)
    return [json.loads(s) for s in found]


def decode_array(value: Any) -> np.ndarray:
    """A plotly JSON array (a list, or ``{"dtype", "bdata", "shape"}`` base64) as a numpy array; None is NaN."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")] if isinstance(shape, str) else shape)
        return a.astype(np.float64)
    return np.array(value, dtype=np.float64)
