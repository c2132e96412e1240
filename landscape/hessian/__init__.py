"""Hessian spectrum of a model's dataset loss: extreme eigenvalues, trace, spectral density.

``eigenvalues``, ``trace`` and ``density`` take the same ``(model, data, loss=..., batch_size=...,
params=..., weight_decay=...)`` as the rest of the package and return small dataclasses that
carry the number, the settings that produced it, and how many Hessian-vector products it cost.
``weight_decay`` adds ``wd * I`` to the Hessian (``wd * P`` to the trace); results say whether it
is in. Everything runs matrix-free through `HessianOperator` (see `landscape.hessian.hvp`); pass
one built earlier as ``data`` to reuse its batches for several measurements (its own loss,
parameter subset and weight decay then apply).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data import DataSpec
from ..errors import LandscapeError
from ..losses import LossSpec
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

__all__ = ["eigenvalues", "trace", "density", "EigenResult", "TraceResult", "DensityResult", "HessianOperator",
           "eigen_extremes", "EigenExtremes", "lanczos", "block_lanczos", "power_iteration", "hutchinson",
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


class _Result:
    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tensors such as eigenvectors left out)."""
        return {k: _jsonable(v) for k, v in asdict(self).items() if not isinstance(v, torch.Tensor)}


@dataclass
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


@dataclass
class TraceResult(_Result):
    """``tr(H)`` and the standard error of the estimate (of its stochastic part, for Hutch++)."""

    value: float
    stderr: float
    n_hvps: int
    settings: dict
    seconds: float = 0.0


@dataclass
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
        """Quadrature moments ``sum_i w_i theta_i^p / n_runs``: estimates of ``tr(H^p)/P``."""
        return quadrature_moments(self.nodes, self.weights, order)

    def save_png(self, path, title: str | None = None) -> None:
        plot_density(self.grid, self.density, path, title)


def _operator(model: nn.Module, data: DataSpec, loss: LossSpec, batch_size: int | None, params: ParamSpec,
              weight_decay: float, device) -> HessianOperator:
    if isinstance(data, HessianOperator):
        return data
    return HessianOperator(model, data, loss, batch_size, params, weight_decay, device)


def eigenvalues(model: nn.Module, data: DataSpec, k: int = 1, which: str = "largest", method: str = "auto",
                loss: LossSpec = "crossentropy", batch_size: int | None = None, params: ParamSpec = None,
                weight_decay: float = 0.0, tol: float = 1e-6, max_iter: int | None = None, seed: int = 0,
                device: str | torch.device | None = None, return_vectors: bool = False,
                progress: bool = False, block_size: int = DEFAULT_BLOCK_SIZE,
                retain_bytes: int = DEFAULT_MAX_BYTES, check_rounding: bool = True,
                v0: torch.Tensor | None = None) -> EigenResult:
    """The ``k`` largest or smallest (``which="smallest"``: most negative) Hessian eigenvalues.

    ``method="lanczos"`` stops once every wanted Ritz value's error estimate is below
    ``tol * |value|``; ``"block"`` is block Lanczos with ``block_size`` products a step (same
    stopping rule; finds repeated eigenvalues up to ``block_size`` copies); ``"power"`` (power
    iteration with deflation) stops on the residual per eigenvalue. ``"auto"`` (default) picks
    Lanczos or block Lanczos (blocks of `AUTO_BLOCK_SIZE`) by what a product costs: products run
    on gradient graphs kept between them (`RetainedProducts`, when they fit in ``retain_bytes``),
    and blocks are chosen only when the graphs are not kept and the forward pass and first
    backward they share are more than `AUTO_BLOCK_FORWARD_SHARE` of a product (measured on the
    first data batch). ``max_iter`` bounds the products (Lanczos: in total, default ``min(P, 300)``;
    power: per eigenvalue, default 1000). ``params`` restricts to one layer or block.
    ``check_rounding`` (float32 models) measures the products' rounding against float64 on
    512 samples (2 products) and folds it into ``errors`` and ``converged`` (see `EigenResult`).
    ``v0`` starts Lanczos from a given flat vector (e.g. the top eigenvector of a nearby model: a
    warm start) instead of a random one drawn with ``seed``.
    """
    if method not in METHODS:
        raise LandscapeError(f"method must be one of {METHODS}, got {method!r}")
    if which not in ("largest", "smallest"):
        raise LandscapeError(f"which must be 'largest' or 'smallest', got {which!r}")
    if v0 is not None and method not in ("lanczos", "auto"):
        raise LandscapeError("v0 (a start vector) applies to method='lanczos' (or 'auto', which then runs it) only")
    op = _operator(model, data, loss, batch_size, params, weight_decay, device)
    start, before = time.perf_counter(), op.n_hvps
    check_rounding = check_rounding and op.param_dtype != torch.float64
    return_vectors, keep_vectors = return_vectors or check_rounding, return_vectors
    products = RetainedProducts(op, max_bytes=retain_bytes)
    chosen = method
    if method == "auto" and v0 is not None:
        chosen = "lanczos"
    elif method == "auto":
        products.prepare()
        blocks = not products.retained and (products.forward_share or 0.0) > AUTO_BLOCK_FORWARD_SHARE
        chosen, block_size = ("block", AUTO_BLOCK_SIZE) if blocks else ("lanczos", block_size)
    label = f"top-{k}" if which == "largest" else f"bottom-{k}"
    with products:
        if chosen == "lanczos":
            run = lanczos(products.mv, op.num_params, k=k, which=which, tol=tol, max_iter=max_iter, seed=seed,
                          device=op.device, v0=v0, return_vectors=return_vectors, progress=progress,
                          desc=f"lanczos {label}")
        elif chosen == "block":
            run = block_lanczos(products.mm, op.num_params, k=k, block_size=block_size, which=which, tol=tol,
                                max_iter=max_iter, seed=seed, device=op.device, return_vectors=return_vectors,
                                progress=progress, desc=f"block lanczos {label}")
        else:
            run = power_iteration(products.mv, op.num_params, k=k, which=which, tol=tol,
                                  max_iter=max_iter if max_iter is not None else 1000, seed=seed, device=op.device,
                                  return_vectors=return_vectors, progress=progress)
    settings = {"k": k, "which": which, "method": method, "solver": chosen, "tol": tol, "max_iter": max_iter,
                "seed": seed, **({"block_size": block_size} if chosen == "block" else {}),
                "graphs_retained": bool(products.retained),
                **({"start": "v0"} if v0 is not None and chosen == "lanczos" else {}), **op.settings}
    n_hvps = op.n_hvps - before  # the rounding check runs on its own operators: not counted
    rounding = _with_rounding(op, run, tol) if check_rounding else \
        {"rounding_error": 0.0 if op.param_dtype == torch.float64 else None}
    return EigenResult(values=run.values, errors=run.errors, residuals=run.residuals, converged=run.converged,
                       n_hvps=n_hvps, settings=settings, seconds=time.perf_counter() - start,
                       vectors=run.vectors if keep_vectors else None, **rounding)


def _with_rounding(op: HessianOperator, run, tol: float) -> dict:
    """Fold the float32 rounding measured along the first eigenvector into ``run``'s errors (in place)."""
    if run.vectors is None or not len(run.values):
        return {}
    relative, absolute = precision.rounding(op, run.vectors[0])
    run.errors = run.errors + absolute
    run.converged = run.converged and bool(np.all(run.errors <= tol * np.abs(run.values)))
    return {"rounding_error": relative, "precision_limited": bool(np.any(absolute > tol * np.abs(run.values)))}


def trace(model: nn.Module, data: DataSpec, n_probes: int = 100, method: str = "hutchinson",
          loss: LossSpec = "crossentropy", batch_size: int | None = None, params: ParamSpec = None,
          weight_decay: float = 0.0, seed: int = 0, device: str | torch.device | None = None,
          progress: bool = False, block_size: int = DEFAULT_BLOCK_SIZE, done: Sequence[float] = (),
          on_block: Callable[[np.ndarray], None] | None = None) -> TraceResult:
    """``tr(H)`` from ``n_probes`` Hessian-vector products, with its standard error.

    ``"hutchinson"``: the mean of ``n_probes`` Rademacher quadratic forms. ``"hutch++"``: the
    same budget of products split between an exact sketch of the dominant subspace and
    Hutchinson on the rest, usually far lower variance on Hessians with outliers. Probes go
    ``block_size`` at a time through `HessianOperator.mm` (one forward and first backward per
    data batch for the whole block); the estimate does not depend on it beyond rounding.
    Hutchinson resumes from ``done`` and reports progress to ``on_block`` (`hutchinson`).
    """
    if method not in TRACE_METHODS:
        raise LandscapeError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    if method != "hutchinson" and (len(done) or on_block is not None):
        raise LandscapeError("only the Hutchinson trace resumes probe by probe (done=, on_block=)")
    op = _operator(model, data, loss, batch_size, params, weight_decay, device)
    start, before = time.perf_counter(), op.n_hvps
    from tqdm.auto import tqdm
    bar = tqdm(total=n_probes - len(done), desc=f"trace ({method})", unit="hvp", disable=not progress,
               leave=False, dynamic_ncols=True)
    try:
        if method == "hutchinson":
            est = hutchinson(op.mv, op.num_params, n_probes, seed, op.device, bar,
                             matmat=op.mm, block_size=block_size, done=done, on_block=on_block)
        else:
            est = hutch_plus_plus(op.mv, op.num_params, n_probes, seed, op.device, bar,
                                  matmat=op.mm, block_size=block_size)
    finally:
        bar.close()
    settings = {"n_probes": n_probes, "method": method, "seed": seed, "probe": "rademacher",
                "resumed_probes": len(done), **op.settings}
    return TraceResult(value=est.value, stderr=est.stderr, n_hvps=op.n_hvps - before, settings=settings,
                       seconds=time.perf_counter() - start)


def density(model: nn.Module, data: DataSpec, n_iter: int = 80, n_runs: int = 10, loss: LossSpec = "crossentropy",
            batch_size: int | None = None, params: ParamSpec = None, weight_decay: float = 0.0, seed: int = 0,
            sigma: float | None = None, grid: np.ndarray | None = None, grid_size: int = 1000,
            device: str | torch.device | None = None, progress: bool = False,
            block_size: int = DEFAULT_BLOCK_SIZE, done: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
            on_run: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> DensityResult:
    """Spectral density by stochastic Lanczos quadrature: ``n_runs`` runs of ``n_iter`` steps.

    Up to ``block_size`` runs go in lockstep, sharing each data batch's forward and first backward
    (`HessianOperator.mm`); the result is that of running them one at a time, up to rounding.

    Returns the quadrature (nodes, weights; each run's weights sum to 1) and its Gaussian-kernel
    smoothing on a grid (``sigma`` defaults to ``sqrt(1e-5)`` times the spectral range).
    ``on_run`` and ``done`` save and resume finished runs (`slq`); the result is the same.
    """
    op = _operator(model, data, loss, batch_size, params, weight_decay, device)
    start, before = time.perf_counter(), op.n_hvps
    from tqdm.auto import tqdm
    todo = n_runs - len(done or {})
    bar = tqdm(total=todo * min(n_iter, op.num_params), desc="density (SLQ)", unit="hvp", disable=not progress,
               leave=False, dynamic_ncols=True)
    try:
        quad, _ = slq(op.mv, op.num_params, n_iter, n_runs, seed, op.device, bar=bar, matmat=op.mm,
                      block_size=block_size, done=done, on_run=on_run)
    finally:
        bar.close()
    g, dens, sig = smooth_density(quad.nodes, quad.weights, grid, sigma, grid_size)
    settings = {"n_iter": n_iter, "n_runs": n_runs, "seed": seed, "sigma": sig, "resumed_runs": len(done or {}),
                **op.settings}
    return DensityResult(nodes=quad.nodes, weights=quad.weights, grid=g, density=dens, sigma=sig,
                         n_hvps=op.n_hvps - before, settings=settings, seconds=time.perf_counter() - start)
