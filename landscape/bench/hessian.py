"""``landscape bench --hessian``: Hessian-vector products and time to the top eigenvalues.

Our Lanczos (full reorthogonalization, stops on Ritz residuals) against a reference power
iteration written the way PyHessian does it (Yao et al. 2020, ``hessian.eigenvalues``: one
eigenvalue at a time, Gram-Schmidt deflation, stop when the Rayleigh quotient changes by less
than ``tol = 1e-3`` relative, at most 100 iterations each), both on the same `HessianOperator`
in the same process, so the ratios compare solvers and not product implementations. The exact
eigenvalues they are scored against come from a long Lanczos run converged to ``1e-10``. scipy's
ARPACK (``eigsh``) runs on the same operator for context.

The model is trained first (fixed seed, a few epochs of SGD) so the spectrum is that of a
trained network, with outliers above a bulk, as in the papers these tools reproduce.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from . import machine_info

PYHESSIAN_TOL = 1e-3
PYHESSIAN_MAX_ITER = 100


def pyhessian_power(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, top_n: int, max_iter: int = PYHESSIAN_MAX_ITER,
                    tol: float = PYHESSIAN_TOL, seed: int = 0) -> list[float]:
    """PyHessian's ``eigenvalues()`` loop, transcribed (including which value it reports on a stop)."""
    gen = torch.Generator().manual_seed(seed)
    eigenvalues: list[float] = []
    eigenvectors: list[torch.Tensor] = []
    while len(eigenvalues) < top_n:
        eigenvalue = None
        v = torch.randn(n, generator=gen, dtype=torch.float64)
        v = v / torch.linalg.vector_norm(v)
        for _ in range(max_iter):
            for u in eigenvectors:                       # orthnormal(v, eigenvectors)
                v = v - (v @ u) * u
            v = v / torch.linalg.vector_norm(v)
            hv = hvp(v)
            tmp = float(hv @ v)
            v = hv / torch.linalg.vector_norm(hv)
            if eigenvalue is None:
                eigenvalue = tmp
            elif abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
                break
            else:
                eigenvalue = tmp
        eigenvalues.append(float(eigenvalue))
        eigenvectors.append(v)
    return eigenvalues


def _trained_model(args: argparse.Namespace, data):
    from ..models import build_model
    from ..train import train

    torch.manual_seed(0)
    model = build_model(args.model, input_shape=data.input_shape, num_classes=data.num_classes)
    train(model, data, batch_size=128, lr=0.05, momentum=0.9, epochs=10, seed=0, progress=False,
          dataset=getattr(data, "name", None))
    return model.eval()


def _rel_err(values, reference) -> float:
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.max(np.abs(values - reference) / np.abs(reference)))


def _timed(fn, op, repeat: int):
    """Best wall time over ``repeat`` runs; products counted on the first (every run is identical)."""
    best, result, hvps = float("inf"), None, 0
    for i in range(repeat):
        before = op.n_hvps
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        if i == 0:
            result, hvps = out, op.n_hvps - before
    return result, hvps, best


def run(args: argparse.Namespace) -> dict:
    from scipy.sparse.linalg import eigsh

    from ..data import get_dataset, subset_indices
    from ..hessian import HessianOperator
    from ..hessian.lanczos import lanczos

    k = args.k
    data = get_dataset(args.dataset, "train", args.data_root)
    model = _trained_model(args, data)
    x, y = data.inputs, data.targets
    idx = subset_indices(len(x), args.samples, 0)
    if idx is not None:
        x, y = x[idx], y[idx]
    op = HessianOperator(model, (x, y), device=args.device)
    n = op.num_params
    repeat = args.repeat

    ref = lanczos(op.mv, n, k=k, tol=1e-10, max_iter=min(n, 400), seed=12345)
    reference = ref.values
    ref_hvps = ref.n_iter

    def lanczos_top(kk: int, tol: float):
        return lambda: lanczos(op.mv, n, k=kk, tol=tol, seed=0).values

    def power_top(kk: int):
        return lambda: pyhessian_power(op.mv, n, kk, seed=0)

    lz1, lz1_hvps, lz1_s = _timed(lanczos_top(1, PYHESSIAN_TOL), op, repeat)
    pw1, pw1_hvps, pw1_s = _timed(power_top(1), op, repeat)
    lzk, lzk_hvps, lzk_s = _timed(lanczos_top(k, 1e-6), op, repeat)
    pwk, pwk_hvps, pwk_s = _timed(power_top(k), op, repeat)
    v0 = np.random.default_rng(0).standard_normal(n)
    ar, ar_hvps, ar_s = _timed(lambda: np.sort(eigsh(op, k=k, which="LA", v0=v0, return_eigenvectors=False))[::-1],
                               op, 1)

    out = {
        "mode": "hessian", "model": args.model, "dataset": args.dataset, "num_params": n, "num_samples": op.num_samples,
        "k": k, "repeat": repeat, "reference_top": [float(v) for v in reference], "reference_hvps": ref_hvps,
        "reference_max_residual": float(np.max(ref.residuals)),
        "lanczos_top1_hvps": lz1_hvps, "lanczos_top1_rel_err": _rel_err(lz1, reference[:1]), "lanczos_top1_s": lz1_s,
        "power_top1_hvps": pw1_hvps, "power_top1_rel_err": _rel_err(pw1, reference[:1]), "power_top1_s": pw1_s,
        "lanczos_topk_hvps": lzk_hvps, "lanczos_topk_rel_err": _rel_err(lzk, reference), "lanczos_topk_s": lzk_s,
        "power_topk_hvps": pwk_hvps, "power_topk_rel_err": _rel_err(sorted(pwk, reverse=True), reference),
        "power_topk_s": pwk_s,
        "eigsh_topk_hvps": ar_hvps, "eigsh_topk_rel_err": _rel_err(ar, reference), "eigsh_topk_s": ar_s,
        "lanczos_tol_top1": PYHESSIAN_TOL, "lanczos_tol_topk": 1e-6, "power_tol": PYHESSIAN_TOL,
        **{f"machine_{key}": val for key, val in machine_info().items()},
    }
    out["hvp_ratio_top1"] = lz1_hvps / pw1_hvps
    out["hvp_ratio_topk"] = lzk_hvps / pwk_hvps
    out["time_ratio_top1"] = lz1_s / pw1_s
    out["time_ratio_topk"] = lzk_s / pwk_s
    out["error_ratio_topk"] = out["lanczos_topk_rel_err"] / max(out["power_topk_rel_err"], 1e-300)
    out["meets_topk"] = bool(out["hvp_ratio_topk"] <= 0.2 and out["error_ratio_topk"] <= 0.01)
    out["meets_top1"] = bool(out["lanczos_top1_rel_err"] <= 1e-3 and lz1_hvps <= pw1_hvps)

    rows = [("Lanczos (ours), top-1, tol 1e-3", lz1_hvps, out["lanczos_top1_rel_err"], lz1_s),
            ("power (PyHessian-style), top-1", pw1_hvps, out["power_top1_rel_err"], pw1_s),
            (f"Lanczos (ours), top-{k}, tol 1e-6", lzk_hvps, out["lanczos_topk_rel_err"], lzk_s),
            (f"power (PyHessian-style), top-{k}", pwk_hvps, out["power_topk_rel_err"], pwk_s),
            (f"scipy eigsh (ARPACK), top-{k}", ar_hvps, out["eigsh_topk_rel_err"], ar_s)]
    print(f"Hessian solvers: {args.model} on {args.dataset} ({op.num_samples} samples), {n:,} parameters; "
          f"reference top-{k} from Lanczos to 1e-10 ({ref_hvps} HVPs): " + ", ".join(f"{v:.6g}" for v in reference))
    print(f"{'solver':<36} {'HVPs':>6} {'max rel err':>12} {'best s':>9}")
    for name, h, e, s in rows:
        print(f"{name:<36} {h:>6} {e:>12.2e} {s:>9.3f}")
    print(f"top-1: Lanczos/power HVPs {out['hvp_ratio_top1']:.2f}, time {out['time_ratio_top1']:.2f}; "
          f"top-{k}: HVPs {out['hvp_ratio_topk']:.2f}, time {out['time_ratio_topk']:.2f}, "
          f"error {out['error_ratio_topk']:.1e}")
    return out
