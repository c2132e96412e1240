"""Hessian spectrum of a model's dataset loss: extreme eigenvalues, trace, spectral density.

``eigenvalues``, ``trace`` and ``density`` take an `EmpiricalRisk` first (``eigenvalues(risk, k=5)``)
and everything else by keyword; ``(model, data, loss=..., batch_size=..., params=...,
weight_decay=..., data_on=...)`` builds the risk for you. They return small dataclasses that carry
the number, the settings that produced it, and how many Hessian-vector products it cost.
``weight_decay`` adds ``wd * I`` to the Hessian (``wd * P`` to the trace); results say whether it
is in. Everything runs matrix-free through the risk's products (`EmpiricalRisk.hvp`/``hmm``);
build one risk to reuse its batches for several measurements (its own loss, parameter subset
and weight decay then apply).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data import DataSpec
from ..errors import LandscapeError
from ..losses import LossSpec
from ..risk import EmpiricalRisk, as_risk
from ..renamed import renamed_keywords
from ..store import MeasureStore
from .density import plot_density, quadrature_moments, slq, smooth_density
from .extremes import EigenExtremes, eigen_extremes
from .hvp import HessianOperator, ParamSpec, dense_hessian, select_parameters
from .lanczos import block_lanczos, lanczos
from .power import power_iteration
from . import precision
from .precision import rounding_error
from .retained import DEFAULT_MAX_BYTES, RetainedProducts
from .trace import DEFAULT_BLOCK_SIZE, hutch_plus_plus, hutchinson
from ..jsonfile import jsonable as _jsonable
from ..reprs import ShortRepr

__all__ = ["eigenvalues", "trace", "density", "EigenResult", "TraceResult", "DensityResult", "HessianOperator",
           "EmpiricalRisk",
           "eigen_extremes", "EigenExtremes", "lanczos", "block_lanczos", "RetainedProducts", "power_iteration", "hutchinson",
           "hutch_plus_plus", "slq", "smooth_density", "plot_density", "dense_hessian", "select_parameters",
           "rounding_error"]

METHODS = ("auto", "lanczos", "block", "power")
AUTO_BLOCK_SIZE = 2
# Block Lanczos (blocks of 2) beats single-vector Lanczos once the forward pass and first backward,
# which a block of products shares per data batch, are more than this share of one product: it
# needed 16 products for a top-5 where single-vector Lanczos needed 12 (trained digits convnet), so
# 16 (1 - share / 2) < 12. With the gradient graphs retained they are paid once, and never wins.
AUTO_BLOCK_FORWARD_SHARE = 0.5
TRACE_METHODS = ("hutchinson", "hutch++")


class _Result(ShortRepr):
    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tensors such as eigenvectors left out)."""
        return {k: _jsonable(v) for k, v in asdict(self).items() if not isinstance(v, torch.Tensor)}

    @classmethod
    def from_dict(cls, d: Mapping):
        """The result a `to_dict` (or a `MeasureStore` entry) holds; arrays come back as arrays."""
        values = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for f in fields(cls):
            if f.type in ("np.ndarray", np.ndarray) and f.name in values:
                values[f.name] = np.asarray(values[f.name], dtype=float)
        return cls(**values)


@dataclass(repr=False)
class EigenResult(_Result):
    """Eigenvalues (largest: descending, smallest: ascending) with their error estimates.

    With float32 products the rounding of the operator itself limits the accuracy (saturated
    softmax at near-zero loss): ``rounding_error`` is the measured ``||H32 v - H64 v|| / ||H64 v||``
    along the first eigenvector, its absolute size is added to every entry of ``errors``, and
    ``converged`` holds only if ``tol`` is met after that; ``precision_limited`` says the rounding,
    not the iteration count, is what keeps the values from ``tol``. ``rounding_error`` is None when
    unchecked (float64 products: 0.0).
    """

    values: np.ndarray
    errors: np.ndarray
    residuals: np.ndarray  # ||H y - theta y|| of each Ritz pair: a rigorous bound on the error (exact products)
    converged: bool
    n_hvps: int
    settings: dict
    seconds: float = 0.0
    vectors: torch.Tensor | None = field(default=None, repr=False)  # (k, P) when return_vectors=True
    rounding_error: float | None = None
    precision_limited: bool = False

    @property
    def top(self) -> float:
        return float(self.values[0])


@dataclass(repr=False)
class TraceResult(_Result):
    """``tr(H)`` and the standard error of the estimate (of its stochastic part, for Hutch++)."""

    value: float
    stderr: float
    n_hvps: int
    settings: dict
    seconds: float = 0.0


@dataclass(repr=False)
class DensityResult(_Result):
    """SLQ nodes and weights per run, and the smoothed density on ``grid``."""

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    n_hvps: int
    settings: dict
    seconds: float = 0.0

    def moments(self, order: int = 2) -> list[float]:
        """Quadrature moments ``sum_i w_i theta_i^p / n_probes``: estimates of ``tr(H^p)/P``."""
        return quadrature_moments(self.nodes, self.weights, order)

    def save_png(self, path, title: str | None = None) -> None:
        plot_density(self.grid, self.density, path, title)


def _risk(model, data, loss, batch_size, params, weight_decay, device, data_on) -> EmpiricalRisk:
    return as_risk(model, data, loss=loss, batch_size=batch_size, params=params, weight_decay=weight_decay,
                   device=device, data_on=data_on)


def eigenvalues(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *, k: int = 1, which: str = "largest",
                method: str = "auto", loss: LossSpec = "crossentropy", batch_size: int | None = None,
                params: ParamSpec = None, weight_decay: float = 0.0, tol: float = 1e-6, max_iter: int | None = None,
                seed: int = 0, device: str | torch.device | None = None, return_vectors: bool = False,
                progress: bool = False, block_size: int = DEFAULT_BLOCK_SIZE, retain_bytes: int = DEFAULT_MAX_BYTES,
                check_rounding: bool = True, v0: torch.Tensor | None = None, data_on: str = "auto",
                store: MeasureStore | None = None) -> EigenResult:
    """The ``k`` largest or smallest (``which="smallest"``: most negative) Hessian eigenvalues.

    ``method="lanczos"`` stops once every wanted Ritz value's error estimate is below
    ``tol * |value|``; ``"block"`` is block Lanczos with ``block_size`` products a step (same
    stopping rule; finds repeated eigenvalues up to ``block_size`` copies); ``"power"`` (power
    iteration with deflation) stops on the residual per eigenvalue. Every method runs its
    products on gradient graphs kept between them (`RetainedProducts`: each product then costs
    its second backward only) when they fit in ``retain_bytes`` (0: never). ``"auto"`` (default)
    picks Lanczos or block Lanczos (blocks of `AUTO_BLOCK_SIZE`) by what a product costs: blocks
    only when the graphs are not kept and the forward pass and first backward they share are
    more than `AUTO_BLOCK_FORWARD_SHARE` of a product (measured on the first data batch). ``max_iter`` bounds the products (Lanczos: in total, default ``min(P, 300)``;
    power: per eigenvalue, default 1000). ``params`` restricts to one layer or block.
    ``check_rounding`` (float32 models) measures the products' rounding against float64 on
    512 samples (2 products) and folds it into ``errors`` and ``converged`` (see `EigenResult`).
    ``v0`` starts Lanczos from a given flat vector (e.g. the top eigenvector of a nearby model: a
    warm start) instead of a random one drawn with ``seed``; under ``"auto"`` it always runs
    single-vector Lanczos then. ``settings["solver"]`` says what ran.
    With a `MeasureStore` a finished result made by the same request is returned instead of measured
    (``largest_eigenvalues`` / ``smallest_eigenvalues``; the float32 rounding check also goes in as
    ``float32_rel_error``).
    """
    if method not in METHODS:
        raise LandscapeError(f"method must be one of {METHODS}, got {method!r}")
    if which not in ("largest", "smallest"):
        raise LandscapeError(f"which must be 'largest' or 'smallest', got {which!r}")
    if v0 is not None and method not in ("lanczos", "auto"):
        raise LandscapeError("v0 (a start vector) applies to method='lanczos' (or 'auto', which then runs it) only")
    request = {"k": k, "which": which, "method": method, "tol": tol, "max_iter": max_iter, "seed": seed,
               **({"block_size": block_size} if method == "block" else {})}
    if store is not None:
        if v0 is not None:
            raise LandscapeError("a stored result cannot say which v0 it started from: pass store or v0, not both")
        found = None if return_vectors else store.reuse(f"{which}_eigenvalues", request)
        if found is not None:
            return EigenResult.from_dict(found)
    r = _risk(risk, data, loss, batch_size, params, weight_decay, device, data_on)
    start, before = time.perf_counter(), r.n_hvps
    check_rounding = check_rounding and r.param_dtype != torch.float64
    return_vectors, keep_vectors = return_vectors or check_rounding, return_vectors
    products = RetainedProducts(r, max_bytes=retain_bytes)
    chosen = method
    if method == "auto" and v0 is not None:  # a warm start (landscape.track): single-vector Lanczos takes v0
        chosen = "lanczos"
    elif method == "auto":
        products.prepare()
        blocks = not products.retained and (products.forward_share or 0.0) > AUTO_BLOCK_FORWARD_SHARE
        chosen, block_size = ("block", AUTO_BLOCK_SIZE) if blocks else ("lanczos", block_size)
    label = f"top-{k}" if which == "largest" else f"bottom-{k}"
    with products:
        if chosen == "lanczos":
            run = lanczos(products.mv, r.num_params, k=k, which=which, tol=tol, max_iter=max_iter, seed=seed,
                          device=r.device, v0=v0, return_vectors=return_vectors, progress=progress,
                          desc=f"lanczos {label}")
        elif chosen == "block":
            run = block_lanczos(products.mm, r.num_params, k=k, block_size=block_size, which=which, tol=tol,
                                max_iter=max_iter, seed=seed, device=r.device, return_vectors=return_vectors,
                                progress=progress, desc=f"block lanczos {label}")
        else:
            run = power_iteration(products.mv, r.num_params, k=k, which=which, tol=tol,
                                  max_iter=max_iter if max_iter is not None else 1000, seed=seed, device=r.device,
                                  return_vectors=return_vectors, progress=progress)
    settings = {"k": k, "which": which, "method": method, "solver": chosen, "tol": tol, "max_iter": max_iter,
                "seed": seed, **({"block_size": block_size} if chosen == "block" else {}),
                "graphs_retained": bool(products.retained),
                **({"start": "v0"} if v0 is not None and chosen == "lanczos" else {}), **r.settings}
    n_hvps = r.n_hvps - before  # the rounding check runs on its own risks: not counted
    rounding = _with_rounding(r, run, tol) if check_rounding else \
        {"rounding_error": 0.0 if r.param_dtype == torch.float64 else None}
    result = EigenResult(values=run.values, errors=run.errors, residuals=run.residuals, converged=run.converged,
                         n_hvps=n_hvps, settings=settings, seconds=time.perf_counter() - start,
                         vectors=run.vectors if keep_vectors else None, **rounding)
    if store is not None:
        store.put(f"{which}_eigenvalues", result.to_dict(), request)
        if check_rounding and result.rounding_error is not None:
            store.put("float32_rel_error", {"value": result.rounding_error, "vector": f"{which} eigenvector",
                                            "samples": min(precision.CHECK_SAMPLES, r.num_samples)}, request)
    return result


def _with_rounding(op: EmpiricalRisk, run, tol: float) -> dict:
    """Fold the float32 rounding measured along the first eigenvector into ``run``'s errors (in place)."""
    if run.vectors is None or not len(run.values):
        return {}
    relative, absolute = precision.rounding(op, run.vectors[0])
    run.errors = run.errors + absolute
    run.converged = run.converged and bool(np.all(run.errors <= tol * np.abs(run.values)))
    return {"rounding_error": relative, "precision_limited": bool(np.any(absolute > tol * np.abs(run.values)))}


def trace(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *, n_probes: int = 100, method: str = "hutchinson",
          loss: LossSpec = "crossentropy", batch_size: int | None = None, params: ParamSpec = None,
          weight_decay: float = 0.0, seed: int = 0, device: str | torch.device | None = None,
          progress: bool = False, block_size: int = DEFAULT_BLOCK_SIZE, done: Sequence[float] = (),
          on_block: Callable[[np.ndarray], None] | None = None, data_on: str = "auto",
          store: MeasureStore | None = None) -> TraceResult:
    """``tr(H)`` from ``n_probes`` Hessian-vector products, with its standard error.

    ``"hutchinson"``: the mean of ``n_probes`` Rademacher quadratic forms. ``"hutch++"``: the
    same budget of products split between an exact sketch of the dominant subspace and
    Hutchinson on the rest, usually far lower variance on Hessians with outliers. Probes go
    ``block_size`` at a time through `EmpiricalRisk.hmm` (one forward and first backward per
    data batch for the whole block); the estimate does not depend on it beyond rounding.
    Hutchinson resumes from ``done`` and reports progress to ``on_block`` (`hutchinson`). With a
    `MeasureStore` the finished trace is reused, and Hutchinson's finished probes are saved block
    by block (``trace_probes``) and picked up by the next call: an interrupted run resumes.
    """
    if method not in TRACE_METHODS:
        raise LandscapeError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    if method != "hutchinson" and (len(done) or on_block is not None):
        raise LandscapeError("only the Hutchinson trace resumes probe by probe (done=, on_block=)")
    request = {"probes": n_probes, "method": method, "seed": seed}
    if store is not None:
        found = store.reuse("trace", request)
        if found is not None:
            return TraceResult.from_dict(found)
        if method == "hutchinson":
            done = (store.reuse("trace_probes", request) or {"samples": list(done)})["samples"]
            on_block = _saving(store, "trace_probes", request, lambda samples: {"samples": samples}, on_block)
    r = _risk(risk, data, loss, batch_size, params, weight_decay, device, data_on)
    start, before = time.perf_counter(), r.n_hvps
    from tqdm.auto import tqdm
    bar = tqdm(total=n_probes - len(done), desc=f"trace ({method})", unit="hvp", disable=not progress,
               leave=False, dynamic_ncols=True)
    try:
        if method == "hutchinson":
            est = hutchinson(r.hvp, r.num_params, n_probes, seed, r.device, bar,
                             matmat=r.hmm, block_size=block_size, done=done, on_block=on_block)
        else:
            est = hutch_plus_plus(r.hvp, r.num_params, n_probes, seed, r.device, bar,
                                  matmat=r.hmm, block_size=block_size)
    finally:
        bar.close()
    settings = {"n_probes": n_probes, "method": method, "seed": seed, "probe": "rademacher",
                "resumed_probes": len(done), **r.settings}
    result = TraceResult(value=est.value, stderr=est.stderr, n_hvps=r.n_hvps - before, settings=settings,
                         seconds=time.perf_counter() - start)
    if store is not None:
        store.drop("trace_probes")
        store.put("trace", result.to_dict(), request)
    return result


def _saving(store: MeasureStore, name: str, request: dict, entry: Callable, user: Callable | None) -> Callable:
    """A progress callback that saves the finished pieces in ``store`` before calling ``user``'s."""
    def save(*args) -> None:
        store.put(name, entry(*args), request)
        if user is not None:
            user(*args)

    return save


@renamed_keywords(n_runs="n_probes")
def density(risk: EmpiricalRisk | nn.Module, data: DataSpec | None = None, *, n_iter: int = 80, n_probes: int = 10, loss: LossSpec = "crossentropy",
            batch_size: int | None = None, params: ParamSpec = None, weight_decay: float = 0.0, seed: int = 0,
            sigma: float | None = None, grid: np.ndarray | None = None, grid_size: int = 1000,
            device: str | torch.device | None = None, progress: bool = False,
            block_size: int = DEFAULT_BLOCK_SIZE, done: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
            on_run: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
            data_on: str = "auto", store: MeasureStore | None = None) -> DensityResult:
    """Spectral density by stochastic Lanczos quadrature: ``n_probes`` random start vectors, ``n_iter`` steps each.

    Up to ``block_size`` runs go in lockstep, sharing each data batch's forward and first backward
    (`EmpiricalRisk.hmm`); the result is that of running them one at a time, up to rounding.

    Returns the quadrature (nodes, weights; each run's weights sum to 1) and its Gaussian-kernel
    smoothing on a grid (``sigma`` defaults to ``sqrt(1e-5)`` times the spectral range).
    ``on_run`` and ``done`` save and resume finished runs (`slq`); the result is the same. With a
    `MeasureStore` the finished density is reused, and finished runs are saved one by one
    (``density_runs``) and picked up by the next call: an interrupted run resumes.
    """
    request = {"n_iter": n_iter, "n_runs": n_probes, "seed": seed}  # the stored key: existing files resume
    if store is not None:
        found = store.reuse("density", request)
        if found is not None:
            return DensityResult.from_dict(found)
        partial = store.reuse("density_runs", request) or {"runs": {}}
        done = {**(done or {}), **{int(k): (run["nodes"], run["weights"]) for k, run in partial["runs"].items()}}

        def entry(r: int, nodes, weights) -> dict:
            partial["runs"][str(r)] = {"nodes": nodes, "weights": weights}
            return partial

        on_run = _saving(store, "density_runs", request, entry, on_run)
    r = _risk(risk, data, loss, batch_size, params, weight_decay, device, data_on)
    start, before = time.perf_counter(), r.n_hvps
    from tqdm.auto import tqdm
    todo = n_probes - len(done or {})
    bar = tqdm(total=todo * min(n_iter, r.num_params), desc="density (SLQ)", unit="hvp", disable=not progress,
               leave=False, dynamic_ncols=True)
    try:
        quad, _ = slq(r.hvp, r.num_params, n_iter, n_probes, seed, r.device, bar=bar, matmat=r.hmm,
                      block_size=block_size, done=done, on_run=on_run)
    finally:
        bar.close()
    g, dens, sig = smooth_density(quad.nodes, quad.weights, grid, sigma, grid_size)
    settings = {"n_iter": n_iter, "n_probes": n_probes, "seed": seed, "sigma": sig, "resumed_runs": len(done or {}),
                **r.settings}
    result = DensityResult(nodes=quad.nodes, weights=quad.weights, grid=g, density=dens, sigma=sig,
                           n_hvps=r.n_hvps - before, settings=settings, seconds=time.perf_counter() - start)
    if store is not None:
        store.drop("density_runs")
        store.put("density", result.to_dict(), request)
    return result
