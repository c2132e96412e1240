"""The papers' figures, regenerated: one recipe per figure, all sharing one set of trained models.

==================  ===========================================================================
``li_fig3``         Li et al. 2018, Fig. 3: 1D and 2D filter-normalized landscapes of small- and
                    large-batch minima, with and without weight decay.
``interpolation``   The line between the small- and large-batch solutions (Goodfellow et al.;
                    Keskar et al. Fig. 3), alpha in [-0.5, 1.5] and [-1, 2].
``keskar_table``    Keskar et al. 2016, Table 2: epsilon-sharpness of small- vs large-batch minima.
``hessian_vs_batch``  Top Hessian eigenvalue and spectral density against batch size.
``steps_to_result``  Shallue et al. 2018: steps to a target test error against batch size.
``golmant``         Golmant et al. 2018: wall-clock time and total compute to the target.
``trajectory``      Li et al. 2018, section 7: training paths on PCA directions.
``lm_scaling``      Steps and time to a target validation loss against batch size: ``gpt-tiny``
                    on ``pysrc`` next to an image classifier (Shallue et al., Golmant et al.).
``edge_of_stability``  Cohen et al. 2021: lambda_max over training for several batch sizes, 2/lr.
``critical_batch``  McCandlish et al. 2018: B_simple's critical batch size against steps to result.
==================  ===========================================================================

``make_figures(names, scale="demo")`` runs them (all by default) and writes PNGs into ``out``;
``landscape figures`` is the command line. See `landscape.figures.scales` for both settings.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import LandscapeError
from ..registries import register
from .scales import DEMO, PAPER, SCALES, Scale, get_scale


@dataclass
class FigureResult:
    """What a recipe made: the files, the numbers behind them, and one line per expected signature."""

    paths: list[Path] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    make: Callable[[Any], FigureResult]


FIGURES: dict[str, Recipe] = {}


def register_figure(name: str, title: str) -> Callable:
    """Decorator: add ``make(ctx) -> FigureResult`` to the registry under ``name``."""
    def wrap(fn: Callable[[Any], FigureResult]) -> Callable[[Any], FigureResult]:
        register(FIGURES, name, Recipe(name, title, fn), "figure", definition=lambda recipe: recipe.make)
        return fn
    return wrap


def list_figures() -> list[str]:
    return list(FIGURES)


def resolve_names(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list_figures()
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise LandscapeError(f"unknown figure {unknown[0]!r}; available: {', '.join(FIGURES)}")
    return list(dict.fromkeys(names))


def make_figures(names: Sequence[str] | None = None, scale: str | Scale = "demo", out: str | os.PathLike = "figures",
                 *, cache: str | os.PathLike | None = None, data_root: str | None = None, device: str | None = None,
                 progress: bool = True, formats: Sequence[str] = ("png",), threads: int | None = None
                 ) -> dict[str, FigureResult]:
    """Run the named recipes (all by default) at ``scale``; figures go to ``out``, models to ``cache``.

    Everything expensive is cached (default cache: ``runs/figures-<scale>``), so an interrupted
    run resumes and a second run only redraws. Returns each recipe's `FigureResult`.
    """
    from .context import FigureContext

    chosen = resolve_names(names)
    ctx = FigureContext(get_scale(scale), out, cache, data_root=data_root, device=device, progress=progress,
                        formats=formats, threads=threads)
    if ctx.scale.study.dataset not in ("digits", "mnist1d") or ctx.scale.scaling.dataset not in ("digits", "mnist1d"):
        ctx.data("train")  # fail early, with the data loader's message, when --data-root is missing
    results: dict[str, FigureResult] = {}
    for k, name in enumerate(chosen, 1):
        recipe = FIGURES[name]
        ctx.log(f"[{k}/{len(chosen)}] {name}: {recipe.title}")
        start = time.perf_counter()
        result = recipe.make(ctx) or FigureResult()
        result.seconds = time.perf_counter() - start
        results[name] = result
        ctx.log(f"{name}:", always=not ctx.progress)
        for line in result.findings:
            ctx.log(f"  - {line}", always=True)
        for path in result.paths:
            ctx.log(f"  written: {path}", always=True)
    if ctx.is_root:
        _write_summary(ctx, results)
    return results


def _write_summary(ctx: Any, results: dict[str, FigureResult]) -> Path:
    """``<out>/figures_<scale>.json``: the numbers and findings behind every figure made in this run."""
    from ..jsonfile import read_json, write_json_atomic

    path = ctx.out / f"figures_{ctx.scale.name}.json"
    summary = read_json(path) or {}
    for name, r in results.items():
        summary[name] = {"title": FIGURES[name].title, "files": [str(p) for p in r.paths], "numbers": r.numbers,
                         "findings": r.findings, "seconds": round(r.seconds, 1)}
    return write_json_atomic(path, summary)


# The recipes register themselves on import, in the order the figures are listed above.
from . import li_fig3, interpolation, keskar_table, hessian_vs_batch, steps_to_result, golmant, trajectory, lm_scaling  # noqa: E402,F401,E501
from . import curvature  # noqa: E402,F401

__all__ = ["make_figures", "list_figures", "register_figure", "FIGURES", "FigureResult", "Recipe", "Scale",
           "SCALES", "DEMO", "PAPER", "get_scale"]
