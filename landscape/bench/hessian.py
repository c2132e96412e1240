"""``landscape bench --hessian``: Hessian-vector products and time to the top eigenvalues.

Our Lanczos (full reorthogonalization, stops on Ritz residuals) against a reference power
iteration written the way PyHessian does it (Yao et al. 2020, ``hessian.eigenvalues``: one
eigenvalue at a time, Gram-Schmidt deflation, stop when the Rayleigh quotient changes by less
than ``tol = 1e-3`` relative, at most 100 iterations each), in the same process on the same
model and data. The power iteration computes its products as PyHessian does, on the model as it
is (``fold_bn=False``); our solvers use the library's own products, whose only difference is that
BatchNorm is folded into the layer before it (`EmpiricalRisk.product_model`), so the top-1 and
top-k time ratios include that product implementation and the HVP ratios compare solvers alone.
The exact eigenvalues they are scored against come from a Lanczos run on a float64 copy of the
model (BatchNorm as it is), converged to ``1e-12``. scipy's ARPACK (``eigsh``) runs on our
operator for context.

The top-k solvers are also timed side by side, per seed and in rotating order: the power
iteration, our Lanczos, ``eigenvalues(method="auto")`` (what the library runs by default: Lanczos
on gradient graphs kept between products, `RetainedProducts`, when they fit) and block Lanczos
on retained and on plain blocked products; each time over the power iteration's of the same seed
gives a paired ratio (median and IQR), next to each solver's error against the reference.

One line times the trace: Hutchinson with ``TRACE_PROBES`` probes one product at a time against
the same probes in blocks (`HessianOperator.mm`: one forward and first backward per data batch
for a whole block), alternating which goes first per seed; the ratio is the median of the pairs.

Each solver runs once per seed (``--repeat`` seeds): mean products, worst error and median time
are reported, since power iteration's cost varies a lot with its random start.

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
LANCZOS_TOL_TOPK = 1e-5  # 100x below the reference's tolerance: the accuracy the comparison asks for
TRACE_PROBES = 8  # one block at the default block size: the cheapest pair that shows the saving


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


def oracle_stop(run, reference, target: float) -> int | None:
    """Fewest steps at which ``run``'s top-k Ritz values were all within ``target`` of ``reference``.

    A Lanczos run with full reorthogonalization is the same run whenever it stops, so the prefixes
    of its tridiagonal are the runs that stopped earlier: this is what a stopping rule that knew
    the exact eigenvalues would have spent from the same start vector (None: never within it).
    """
    from scipy.linalg import eigh_tridiagonal

    k = len(run.values)
    for m in range(k, len(run.alpha) + 1):
        theta = np.sort(eigh_tridiagonal(run.alpha[:m], run.beta[:m - 1], eigvals_only=True))[::-1][:k]
        if _rel_err(theta, reference[:k]) <= target:
            return m
    return None


def _trained_model(args: argparse.Namespace, data):
    from ..train import init_model, train

    torch.manual_seed(0)
    model = init_model(args.model, data, seed=0, **(getattr(args, "model_args", None) or {}))
    train(model, data, batch_size=128, lr=0.05, momentum=0.9, epochs=10, seed=0, progress=False,
          dataset=getattr(data, "name", None))
    return model.eval()


def _model_and_data(args: argparse.Namespace):
    """(model, train split, model name, dataset name): the ``--ckpt`` given, or the default model trained here."""
    from ..checkpoint import load_checkpoint
    from ..data import get_dataset

    if not args.ckpt:
        data = get_dataset(args.dataset, "train", args.data_root)
        return _trained_model(args, data), data, args.model, args.dataset
    ckpt = load_checkpoint(args.ckpt)
    name = ckpt.dataset_name(args.dataset)
    return ckpt.model.eval(), get_dataset(name, "train", args.data_root), ckpt.meta.get("model", args.ckpt), name


def _rel_err(values, reference) -> float:
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.max(np.abs(values - reference) / np.abs(reference)))


def _seeded_runs(solve: Callable[[int], list], op, reference, seeds: range) -> dict:
    """Run ``solve(seed)`` once per seed: mean products, worst error, median seconds per run."""
    hvps, errs, secs = [], [], []
    for seed in seeds:
        before = op.n_hvps
        t0 = time.perf_counter()
        values = solve(seed)
        secs.append(time.perf_counter() - t0)
        hvps.append(op.n_hvps - before)
        errs.append(_rel_err(sorted(values, reverse=True), reference[:len(values)]))
    return {"hvps": float(np.mean(hvps)), "hvps_each": hvps, "rel_err": float(np.max(errs)),
            "seconds": float(np.median(secs))}


PAIRED_LABELS = {"auto": "auto (eigenvalues, method='auto')", "block": "block Lanczos x2, retained graphs",
                 "block_plain": "block Lanczos x4, plain blocked products"}


def _paired_topk(op, plain_op, k: int, reference, seeds: range, lanczos_runs: list) -> dict:
    """Top-k by every solver once per seed, in turns (order rotated per seed), timed side by side.

    ``power`` is the PyHessian-style loop on single products of the model as it is (``plain_op.mv``:
    forward, first and second backward per vector, BatchNorm on the activations, as PyHessian computes
    them), ``lanczos`` our Lanczos on our single products (``op.mv``: the same, with BatchNorm folded
    into the layer before it, `EmpiricalRisk.product_model`),
    ``auto`` what `landscape.hessian.eigenvalues` runs by default (``method="auto"``: it picks the
    solver and whether to keep the gradient graphs, `RetainedProducts`; the choice and the graph
    build are in its time; no float32 rounding check), ``block`` block Lanczos on retained
    products and ``block_plain`` block Lanczos on the risk's blocked products. Each run's time is
    divided by the power iteration's of the same seed; the median and IQR of those ratios are
    reported.
    """
    from ..hessian import AUTO_BLOCK_SIZE, RetainedProducts, eigenvalues
    from ..hessian.lanczos import block_lanczos, lanczos

    chosen: dict = {}

    def auto(seed: int):
        res = eigenvalues(op.risk, k=k, method="auto", tol=LANCZOS_TOL_TOPK, seed=seed, check_rounding=False)
        chosen.update(solver=res.settings["solver"], graphs_retained=res.settings["graphs_retained"])
        return res.values

    def block(seed: int):
        with RetainedProducts(op.risk) as rp:
            values = block_lanczos(rp.mm, op.num_params, k=k, block_size=AUTO_BLOCK_SIZE, tol=LANCZOS_TOL_TOPK,
                                   seed=seed).values
            chosen["graph_bytes"] = rp.graph_bytes if rp.retained else 0
        return values

    def single(seed: int):
        lanczos_runs.append(lanczos(op.mv, op.num_params, k=k, tol=LANCZOS_TOL_TOPK, seed=seed))
        return lanczos_runs[-1].values

    solvers = {"power": lambda sd: pyhessian_power(plain_op.mv, op.num_params, k, seed=sd), "lanczos": single, "auto": auto,
               "block": block,
               "block_plain": lambda sd: block_lanczos(op.mm, op.num_params, k=k, block_size=4, tol=LANCZOS_TOL_TOPK,
                                                       seed=sd).values}
    per: dict[str, list] = {name: [] for name in solvers}
    names = list(solvers)
    for i, seed in enumerate(seeds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            per[name].append(_seeded_runs(solvers[name], plain_op if name == "power" else op, reference,
                                          range(seed, seed + 1)))
    out = {}
    for name, runs in per.items():
        secs = np.array([r["seconds"] for r in runs])
        ratios = secs / np.array([r["seconds"] for r in per["power"]])
        out[name] = {"hvps": float(np.mean([r["hvps"] for r in runs])), "hvps_each": [r["hvps_each"][0] for r in runs],
                     "rel_err": float(max(r["rel_err"] for r in runs)), "seconds": float(np.median(secs)),
                     "time_ratio": float(np.median(ratios)),
                     "time_ratio_iqr": [float(q) for q in np.percentile(ratios, [25, 75])]}
    out["auto"].update(chosen)
    return out


def _trace_pair(op, seeds: range) -> dict:
    """Seconds of Hutchinson per probe vs in blocks, interleaved per seed (same probes, same value)."""
    from ..hessian.trace import DEFAULT_BLOCK_SIZE, hutchinson

    runs = {"per_vector": lambda sd: hutchinson(op.mv, op.num_params, TRACE_PROBES, sd, op.device),
            "blocked": lambda sd: hutchinson(op.mv, op.num_params, TRACE_PROBES, sd, op.device, matmat=op.mm)}
    secs: dict[str, list[float]] = {k: [] for k in runs}
    diffs = []
    for seed in seeds:
        values = {}
        for name in (list(runs) if seed % 2 == 0 else list(runs)[::-1]):
            t0 = time.perf_counter()
            values[name] = runs[name](seed).value
            secs[name].append(time.perf_counter() - t0)
        diffs.append(abs(values["blocked"] - values["per_vector"]) / abs(values["per_vector"]))
    ratios = [b / a for a, b in zip(secs["per_vector"], secs["blocked"])]
    return {"trace_probes": TRACE_PROBES, "trace_block_size": DEFAULT_BLOCK_SIZE,
            "trace_per_vector_s": float(np.median(secs["per_vector"])), "trace_blocked_s": float(np.median(secs["blocked"])),
            "trace_time_ratio": float(np.median(ratios)), "trace_rel_diff": float(max(diffs))}


def run(args: argparse.Namespace) -> dict:
    from scipy.sparse.linalg import eigsh

    from ..data import subset_indices
    from ..hessian import HessianOperator
    from ..hessian.lanczos import lanczos

    k = args.k
    model, data, model_name, dataset = _model_and_data(args)
    x, y = data.inputs, data.targets
    idx = subset_indices(len(x), args.samples, 0)
    if idx is not None:
        x, y = x[idx], y[idx]
    op = HessianOperator(model, (x, y), device=args.device)
    # PyHessian differentiates the model as it is: its products keep BatchNorm on the activations.
    plain_op = HessianOperator(model, (x, y), device=args.device, fold_bn=False)
    n = op.num_params
    repeat = args.repeat  # here: runs with seeds 0..repeat-1 per solver (power iteration varies a lot by seed)

    # The reference runs in float64 (a copy of the model, same data), so its accuracy is not capped
    # by float32 products (~1e-7 relative); the solvers under test use the float32 operator.
    import copy

    ref_op = HessianOperator(copy.deepcopy(model).double(), (x.double(), y), device=args.device, fold_bn=False)
    ref = lanczos(ref_op.mv, n, k=k, tol=1e-12, max_iter=min(n, 400), seed=12345)
    reference = ref.values
    ref_hvps = ref.n_iter

    seeds = range(repeat)
    lz1 = _seeded_runs(lambda sd: lanczos(op.mv, n, k=1, tol=PYHESSIAN_TOL, seed=sd).values, op, reference, seeds)
    pw1 = _seeded_runs(lambda sd: pyhessian_power(plain_op.mv, n, 1, seed=sd), plain_op, reference, seeds)
    lzk_runs: list = []  # kept whole: the oracle column reads their tridiagonals
    paired = _paired_topk(op, plain_op, k, reference, seeds, lzk_runs)
    lzk, pwk = paired.pop("lanczos"), paired.pop("power")
    oracle = [oracle_stop(run, reference, pwk["rel_err"] / 100) for run in lzk_runs]
    v0 = np.random.default_rng(0).standard_normal(n)
    ar = _seeded_runs(lambda sd: eigsh(op, k=k, which="LA", v0=v0, return_eigenvectors=False), op, reference, range(1))
    tr = _trace_pair(op, seeds)

    out = {"mode": "hessian", "model": model_name, "dataset": dataset, "checkpoint": args.ckpt, "num_params": n,
           "num_samples": op.num_samples, "k": k, "seeds": repeat, "reference_top": [float(v) for v in reference],
           "reference_hvps": ref_hvps, "reference_max_residual": float(np.max(ref.residuals)),
           "lanczos_tol_top1": PYHESSIAN_TOL, "lanczos_tol_topk": LANCZOS_TOL_TOPK, "power_tol": PYHESSIAN_TOL,
           **tr, **{f"machine_{key}": val for key, val in machine_info().items()}}
    for name, r in [("lanczos_top1", lz1), ("power_top1", pw1), ("lanczos_topk", lzk), ("power_topk", pwk),
                    ("eigsh_topk", ar)]:
        out.update({f"{name}_hvps": r["hvps"], f"{name}_hvps_each": r["hvps_each"], f"{name}_rel_err": r["rel_err"],
                    f"{name}_s": r["seconds"]})
    out["hvp_ratio_top1"] = lz1["hvps"] / pw1["hvps"]
    out["hvp_ratio_topk"] = lzk["hvps"] / pwk["hvps"]
    out["time_ratio_top1"] = lz1["seconds"] / pw1["seconds"]
    out["time_ratio_topk"] = lzk["seconds"] / pwk["seconds"]
    out["error_ratio_topk"] = lzk["rel_err"] / max(pwk["rel_err"], 1e-300)
    out["oracle_topk_hvps_each"] = oracle
    out["oracle_topk_hvps"] = float(np.mean(oracle)) if None not in oracle else None
    out["oracle_ratio_topk"] = out["oracle_topk_hvps"] / pwk["hvps"] if out["oracle_topk_hvps"] else None
    out["meets_topk"] = bool(out["hvp_ratio_topk"] <= 0.2 and out["error_ratio_topk"] <= 0.01)
    out["meets_top1"] = bool(lz1["rel_err"] <= 1e-3 and lz1["hvps"] <= pw1["hvps"])

    for name, r in paired.items():
        out.update({f"{name}_topk_hvps": r["hvps"], f"{name}_topk_rel_err": r["rel_err"], f"{name}_topk_s": r["seconds"],
                    f"{name}_topk_time_ratio": r["time_ratio"], f"{name}_topk_time_ratio_iqr": r["time_ratio_iqr"],
                    f"{name}_topk_error_ratio": r["rel_err"] / max(pwk["rel_err"], 1e-300)})
    auto = paired["auto"]
    out.update(auto_solver=auto["solver"], graphs_retained=auto["graphs_retained"], graph_bytes=auto["graph_bytes"])
    out["meets_topk_time"] = bool(out["auto_topk_time_ratio"] <= 0.15 and out["auto_topk_error_ratio"] <= 0.01)
    rows = [("Lanczos (ours), top-1, tol 1e-3", lz1), ("power (PyHessian-style), top-1", pw1),
            (f"Lanczos (ours), top-{k}, tol {LANCZOS_TOL_TOPK:g}", lzk), (f"power (PyHessian-style), top-{k}", pwk),
            *[(f"{PAIRED_LABELS[name]}, top-{k}", r) for name, r in paired.items()],
            (f"scipy eigsh (ARPACK), top-{k}, 1 run", ar)]
    print(f"Hessian solvers: {model_name} on {dataset} ({op.num_samples} samples), {n:,} parameters; "
          f"reference top-{k} from float64 Lanczos to 1e-12 ({ref_hvps} HVPs): " + ", ".join(f"{v:.6g}" for v in reference))
    print(f"over seeds 0..{repeat - 1}: mean HVPs, worst relative error, median seconds per run")
    print(f"{'solver':<38} {'HVPs':>6} {'max rel err':>12} {'median s':>9}")
    for name, r in rows:
        print(f"{name:<38} {r['hvps']:>6.1f} {r['rel_err']:>12.2e} {r['seconds']:>9.3f}")
    print(f"top-1: Lanczos/power HVPs {out['hvp_ratio_top1']:.2f}, time {out['time_ratio_top1']:.2f}; "
          f"top-{k}: HVPs {out['hvp_ratio_topk']:.2f}, time {out['time_ratio_topk']:.2f}, "
          f"error {out['error_ratio_topk']:.1e}")
    if out["oracle_topk_hvps"]:
        print(f"oracle: the same Lanczos runs stopped at the first step whose top-{k} error is 100x under the power "
              f"iteration's ({pwk['rel_err'] / 100:.1e}) would use {out['oracle_topk_hvps']:.1f} HVPs "
              f"({', '.join(map(str, oracle))}): {out['oracle_ratio_topk']:.3f}x the power iteration's; the "
              f"stopping rule spends {lzk['hvps'] / out['oracle_topk_hvps']:.2f}x the oracle's")
    for name, r in paired.items():
        print(f"{PAIRED_LABELS[name]}: time / power's, paired per seed: median {r['time_ratio']:.3f} (IQR "
              f"{r['time_ratio_iqr'][0]:.3f}-{r['time_ratio_iqr'][1]:.3f}), error {r['rel_err']:.1e} "
              f"({pwk['rel_err'] / max(r['rel_err'], 1e-300):.0f}x below power's)")
    kept = f"gradient graphs kept ({out['graph_bytes'] / 2 ** 20:.0f} MiB)" if out["graphs_retained"] else \
        "gradient graphs not kept"
    print(f"top-{k} target (<= 0.15x power's time at >= 100x lower error) by method='auto' "
          f"({out['auto_solver']}, {kept}): {'met' if out['meets_topk_time'] else 'not met'}")
    print(f"trace, Hutchinson {TRACE_PROBES} probes: {tr['trace_per_vector_s']:.3f} s one product per probe, "
          f"{tr['trace_blocked_s']:.3f} s in blocks of {tr['trace_block_size']} (median paired ratio "
          f"{tr['trace_time_ratio']:.2f}, values agree to {tr['trace_rel_diff']:.0e})")
    return out
