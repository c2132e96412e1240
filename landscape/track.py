"""Curvature and gradient noise over training: what the edge of stability and the critical batch size need.

At every tracked step (a snapshot of a run, or every N steps inside `landscape.train`) on a
fixed, seeded subset of the training data, in eval mode, weight decay not included:

- ``lambda_max``: the top Hessian eigenvalue by Lanczos, warm-started from the previous step's
  top eigenvector (neighbouring steps have nearly the same one, so it converges in fewer
  Hessian-vector products); ``lambda_max_hvps`` is what it cost. Gradient descent on a quadratic
  is stable only while ``lambda_max < 2 / lr`` (``2 (1 + beta) / lr`` with heavy-ball momentum
  ``beta``); Cohen et al. (2021) find full-batch training sharpens until it sits at that edge.
- ``trace`` and ``trace_se``: Hutchinson's estimate of ``tr(H)`` and its standard error.
- ``grad_norm``: ``|G|``, the norm of the mean gradient over the subset.
- ``b_simple`` and ``b_simple_se``: the gradient noise scale of McCandlish et al. (2018),
  ``B_simple = tr(Sigma) / |G|^2``, from **per-sample** gradients ``g_i`` of the ``n`` subset
  samples: ``tr(Sigma) = sum |g_i - mean g|^2 / (n - 1)`` and ``|G|^2 = |mean g|^2 - tr(Sigma) / n``
  (both unbiased; the second removes the noise the finite subset adds to ``|mean g|^2``). Its
  standard error is a bootstrap over the samples (from the Gram matrix of the ``g_i``, so each
  replicate costs no gradients). Where the estimated ``|G|^2`` is not positive the noise swamps
  the signal and ``b_simple`` is infinite. McCandlish et al. predict the critical batch size,
  beyond which a larger batch stops cutting the steps to a result, to be about ``B_simple``.

`Tracker` keeps the points in ``track.json`` (and the last top eigenvector in ``track_vector.pt``)
rewritten atomically after every point; a rerun with the same settings skips finished steps and
warm-starts from the saved vector, so an interrupted track resumes with the same numbers.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .data import DataSpec, as_tensors, subset_indices
from .errors import LandscapeError
from .filewrite import atomic_path
from .jsonfile import read_json, write_json_atomic
from .losses import LossSpec, get_loss, loss_name

TRACK_FILE = "track.json"
VECTOR_FILE = "track_vector.pt"
FORMAT = "landscape-track"


# --------------------------------------------------------------------------- gradient noise scale
def per_sample_gradients(model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                         chunk: int = 64) -> torch.Tensor:
    """``(n, P)`` float64 matrix of each sample's loss gradient (eval mode; parameters in model order).

    ``torch.func.vmap`` over ``grad`` where the model allows it, one backward per sample where not.
    """
    from torch.func import functional_call, grad, vmap

    from .evaluation import eval_mode

    x, y = as_tensors(data)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    loss_fn = get_loss(loss)
    device = next(iter(params.values())).device

    def one(p, xi, yi):
        return loss_fn(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    rows = []
    with eval_mode(model):
        per_sample = vmap(grad(one), in_dims=(None, 0, 0))
        for start in range(0, len(x), chunk):
            xb, yb = x[start:start + chunk].to(device), y[start:start + chunk].to(device)
            try:
                g = per_sample(params, xb, yb)
                rows.append(torch.cat([g[n].reshape(len(xb), -1).double() for n in names], dim=1))
            except Exception:  # noqa: BLE001 - a model vmap cannot batch: one backward per sample
                live = [p for p in model.parameters() if p.requires_grad]
                for xi, yi in zip(xb, yb):
                    with torch.enable_grad():
                        gi = torch.autograd.grad(loss_fn(model(xi.unsqueeze(0)), yi.unsqueeze(0)), live,
                                                 allow_unused=True)
                    rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(1, -1).double()
                                           for g, p in zip(gi, live)], dim=1))
    return torch.cat(rows)


def noise_scale(grads: torch.Tensor, *, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """``B_simple`` from per-sample gradients ``(n, P)`` with a bootstrap standard error (see the module doc).

    Returns ``b_simple``, ``b_simple_se``, ``tr_sigma``, ``g2`` (the unbiased ``|G|^2``),
    ``grad_norm`` (``|mean g|``), ``n`` and ``b_simple_inf_fraction`` (bootstrap replicates whose
    ``|G|^2`` estimate was not positive).
    """
    n = grads.shape[0]
    if n < 2:
        raise LandscapeError(f"the gradient noise scale needs at least 2 samples, got {n}")
    gram = (grads @ grads.T).cpu().numpy()

    def estimate(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of weights ``w`` (summing to 1): tr(Sigma), unbiased |G|^2 and |mean g|^2."""
        mean_sq = np.einsum("bi,ij,bj->b", w, gram, w)
        tr_sigma = n / (n - 1) * (w @ np.diag(gram) - mean_sq)
        return tr_sigma, mean_sq - tr_sigma / n, mean_sq

    tr_sigma, g2, mean_sq = (v[0] for v in estimate(np.full((1, n), 1.0 / n)))
    b = tr_sigma / g2 if g2 > 0 else math.inf
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n
    bt, bg, _ = estimate(w)
    boot = np.where(bg > 0, bt / np.where(bg > 0, bg, 1.0), np.inf)
    finite = boot[np.isfinite(boot)]
    se = float(np.std(finite, ddof=1)) if len(finite) > 1 and np.isfinite(b) else math.nan
    return {"b_simple": float(b), "b_simple_se": se, "tr_sigma": float(tr_sigma), "g2": float(g2),
            "grad_norm": float(math.sqrt(max(mean_sq, 0.0))), "n": int(n),
            "b_simple_inf_fraction": float(1 - len(finite) / n_boot)}


# --------------------------------------------------------------------------- one tracked point
class Tracker:
    """Measures models along a run and keeps the points (see the module doc).

    ``path`` is the run directory (``track.json`` and ``track_vector.pt`` go there) or None to
    keep points in memory. ``cold_check`` also runs Lanczos from a random start at every point
    (``lambda_max_cold``, ``cold_hvps``): what the warm start saved, and that it finds the same value.
    """

    def __init__(self, data: DataSpec, path: str | os.PathLike | None = None, *, samples: int | None = 1024,
                 seed: int = 0, loss: LossSpec = "crossentropy", tol: float = 1e-3, max_iter: int = 200,
                 n_probes: int = 30, n_boot: int = 200, cold_check: bool = False,
                 run_meta: Mapping[str, Any] | None = None, progress: bool = False):
        if not tol > 0:
            raise LandscapeError(f"tol must be positive, got {tol}")
        if n_probes < 2:
            raise LandscapeError(f"n_probes must be at least 2 (a standard error needs two), got {n_probes}")
        x, y = as_tensors(data)
        idx = subset_indices(len(x), samples, seed)
        self.data = (x, y) if idx is None else (x[idx], y[idx])
        from .surface import subset_hash

        self.settings = {"samples": len(self.data[0]), "subset": subset_hash(idx), "seed": int(seed),
                         "loss": loss_name(loss), "tol": float(tol), "max_iter": int(max_iter),
                         "n_probes": int(n_probes), "n_boot": int(n_boot), "cold_check": bool(cold_check),
                         "gradient_variance": "per-sample", "mode": "eval", "weight_decay_included": False}
        self.loss = loss
        self.progress = progress
        self.run_meta = {k: v for k, v in dict(run_meta or {}).items()
                         if k in ("lr", "momentum", "batch_size", "weight_decay", "optimizer", "schedule", "seed",
                                  "dataset", "model", "n_train", "steps_per_epoch")}
        self.path = Path(path) if path is not None else None
        self.points: list[dict] = []
        self.vector: torch.Tensor | None = None
        if self.path is not None:
            self._load()

    # ----- files
    def _load(self) -> None:
        old = read_json(self.path / TRACK_FILE)
        if not old:
            return
        if old.get("format") != FORMAT:
            raise LandscapeError(f"{self.path / TRACK_FILE} is not a landscape track file; move it away")
        if old.get("settings") != self.settings:
            changed = sorted(k for k in set(old.get("settings", {})) | set(self.settings)
                             if old.get("settings", {}).get(k) != self.settings.get(k))
            raise LandscapeError(f"{self.path / TRACK_FILE} was measured with other settings ({', '.join(changed)}); "
                                 "rerun with the same ones, or delete it to measure again")
        self.points = list(old.get("points", []))
        vector = self.path / VECTOR_FILE
        if self.points and vector.exists():
            self.vector = torch.load(vector, weights_only=True)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if self.vector is not None:
            with atomic_path(self.path / VECTOR_FILE) as tmp:
                torch.save(self.vector.cpu(), tmp)
        write_json_atomic(self.path / TRACK_FILE, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "settings": self.settings, "run": self.run_meta, "points": self.points,
                "hvps_saved": self.hvps_saved()}

    def done_steps(self) -> set[int]:
        return {int(p["step"]) for p in self.points}

    def hvps_saved(self) -> int | None:
        """Lanczos products the warm starts saved over cold ones (with ``cold_check``), else None."""
        pairs = [(p["cold_hvps"], p["lambda_max_hvps"]) for p in self.points if "cold_hvps" in p]
        return int(sum(c - w for c, w in pairs)) if pairs else None

    # ----- measuring
    def measure(self, model: nn.Module, step: int, **extra: Any) -> dict:
        """Measure ``model`` as the point at ``step`` (``extra`` fields such as lr, epoch are stored too)."""
        from . import hessian

        start = time.perf_counter()
        s = self.settings
        eig = hessian.eigenvalues(model, self.data, k=1, loss=self.loss, tol=s["tol"], max_iter=s["max_iter"],
                                  seed=s["seed"], return_vectors=True, v0=self.vector)
        point: dict[str, Any] = {"step": int(step), **extra, "lambda_max": eig.top,
                                 "lambda_max_error": float(eig.errors[0]), "lambda_max_converged": bool(eig.converged),
                                 "lambda_max_hvps": int(eig.n_hvps), "warm_start": self.vector is not None}
        if s["cold_check"]:
            cold = hessian.eigenvalues(model, self.data, k=1, loss=self.loss, tol=s["tol"], max_iter=s["max_iter"],
                                       seed=s["seed"])
            point.update(lambda_max_cold=cold.top, cold_hvps=int(cold.n_hvps))
        tr = hessian.trace(model, self.data, n_probes=s["n_probes"], loss=self.loss, seed=s["seed"])
        point.update(trace=float(tr.value), trace_se=float(tr.stderr))
        noise = noise_scale(per_sample_gradients(model, self.data, self.loss), n_boot=s["n_boot"], seed=s["seed"])
        point.update({k: v for k, v in noise.items() if k != "n"})
        point["seconds"] = time.perf_counter() - start
        self.vector = eig.vectors[0].detach().clone()
        self.points = [p for p in self.points if int(p["step"]) != int(step)] + [point]
        self.points.sort(key=lambda p: p["step"])
        self._save()
        return point

    def callback(self, every: int) -> Callable[[nn.Module, int, Mapping[str, Any]], None]:
        """A `landscape.train` ``on_step`` hook measuring every ``every`` steps (and step 0)."""
        if every < 1:
            raise LandscapeError(f"--track-every must be a positive number of steps, got {every}")

        def hook(model: nn.Module, step: int, info: Mapping[str, Any]) -> None:
            if step % every == 0 and step not in self.done_steps():
                self.measure(model, step, **dict(info))
        return hook


def track_run(run_dir: str | os.PathLike, *, data_root: str | None = None, samples: int | None = 1024,
              seed: int = 0, tol: float = 1e-3, max_iter: int = 200, n_probes: int = 30, cold_check: bool = False,
              device: str | None = None, progress: bool = True) -> Tracker:
    """Measure every snapshot of a run (``RUN_DIR/snapshots/*.pt`` and ``RUN_DIR/model.pt``) in step order."""
    from tqdm.auto import tqdm

    from .checkpoint import load_checkpoint
    from .data import get_dataset
    from .schedules import LRSchedule

    run_dir = Path(run_dir)
    paths = sorted((run_dir / "snapshots").glob("*.pt")) + ([run_dir / "model.pt"] if (run_dir / "model.pt").exists()
                                                            else [])
    if not paths:
        raise LandscapeError(f"{run_dir} holds no model.pt and no snapshots/*.pt; train with landscape train --out "
                             f"{run_dir} --snapshot-every N, or measure in the loop with --track-every N")
    checkpoints = {}
    for path in paths:
        ck = load_checkpoint(path, map_location=device or "cpu")
        checkpoints.setdefault(int(ck.meta.get("step", 0) or 0), (path, ck))
    meta = checkpoints[max(checkpoints)][1].meta
    dataset = meta.get("dataset")
    if not dataset or dataset == "custom":
        raise LandscapeError(f"{run_dir}'s checkpoints do not name a built-in dataset; use landscape.track.Tracker "
                             "from Python with the data")
    tracker = Tracker(get_dataset(dataset, "train", data_root), run_dir, samples=samples, seed=seed,
                      loss=meta.get("loss", "crossentropy"), tol=tol, max_iter=max_iter, n_probes=n_probes,
                      cold_check=cold_check, run_meta=meta)
    sched = None
    if meta.get("lr") is not None and meta.get("total_steps"):
        sched = LRSchedule(float(meta["lr"]), int(meta["total_steps"]), meta.get("schedule", "constant"),
                           int(meta.get("warmup_steps", 0) or 0), tuple(meta.get("milestones", (0.5, 0.75))),
                           float(meta.get("gamma", 0.1)))
    todo = [s for s in sorted(checkpoints) if s not in tracker.done_steps()]
    for step in tqdm(todo, desc="track", unit="snapshot", disable=not progress, dynamic_ncols=True):
        path, ck = checkpoints[step]
        info = {"epoch": ck.meta.get("epoch"), "checkpoint": path.name,
                "lr": sched(min(step, sched.total_steps - 1)) if sched is not None else meta.get("lr")}
        tracker.measure(ck.model, step, **info)
    return tracker


# --------------------------------------------------------------------------- drawing
def edge_lines(lr: float, momentum: float = 0.0) -> dict[str, float]:
    """The stability edges of gradient descent at learning rate ``lr``: ``2/lr`` and ``2(1+beta)/lr``."""
    lines = {"2/lr": 2.0 / lr}
    if momentum:
        lines["2(1+β)/lr"] = 2.0 * (1.0 + momentum) / lr
    return lines


def series(track: Mapping[str, Any], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one quantity of a track; JSON's null (an infinite B_simple, an undefined SE) as NaN."""
    pts = track["points"]
    return (np.array([p["step"] for p in pts], dtype=float),
            np.array([math.nan if p.get(key) is None else p[key] for p in pts], dtype=float))


def draw_track(track: Mapping[str, Any] | Sequence[tuple[str, Mapping[str, Any]]], out: str | os.PathLike,
               formats: Sequence[str] = ("png",), title: str | None = None) -> list[Path]:
    """lambda_max (with the 2/lr edges), the trace and B_simple against step; one run or several labelled ones."""
    from .plot.canvas import new_figure

    runs = [("", track)] if isinstance(track, Mapping) else list(track)
    fig = new_figure((13.5, 3.9))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    edges_drawn: set[tuple[str, float]] = set()
    for k, (label, t) in enumerate(runs):
        pts = t["points"]
        if not pts:
            continue
        color = f"C{k % 10}"
        steps, lam = series(t, "lambda_max")
        steps_plot = np.maximum(steps, 1)
        axes[0].plot(steps_plot, lam, "o-", ms=3, color=color, label=label or r"$\lambda_{max}$")
        lr = t.get("run", {}).get("lr")
        if lr:
            for name, value in edge_lines(float(lr), float(t.get("run", {}).get("momentum") or 0.0)).items():
                if (name, value) in edges_drawn:
                    continue
                edges_drawn.add((name, value))
                axes[0].axhline(value, color=color if len(runs) > 1 else "0.3",
                                ls="--" if name == "2/lr" else ":", lw=1,
                                label=f"{name} = {value:.3g}" + (f" (lr {float(lr):g})" if len(runs) > 1 else ""))
        tr, se = series(t, "trace")[1], series(t, "trace_se")[1]
        axes[1].errorbar(steps_plot, tr, yerr=se, fmt="o-", ms=3, capsize=2, color=color, label=label or None)
        b, bse = series(t, "b_simple")[1], series(t, "b_simple_se")[1]
        ok = np.isfinite(b) & (b > 0)
        axes[2].errorbar(steps_plot[ok], b[ok], yerr=np.where(np.isfinite(bse[ok]), bse[ok], 0), fmt="o-", ms=3,
                         capsize=2, color=color, label=label or None)
    from .figures.common import plain_log_ticks

    for ax, ylabel in zip(axes, (r"top Hessian eigenvalue $\lambda_{max}$", r"Hessian trace (Hutchinson $\pm$ SE)",
                                 r"noise scale $B_{simple}=tr(\Sigma)/|G|^2$ $\pm$ SE")):
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_xlabel("step (step 0 drawn at 1)")
        ax.set_ylabel(ylabel)
        ax.grid(True, color="0.92")
    for ax in (axes[0], axes[2]):
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    axes[0].legend(fontsize=7, frameon=False)
    if len(runs) > 1:
        axes[2].legend(fontsize=7, frameon=False)
    first = runs[0][1]
    s = first.get("settings", {})
    fig.suptitle(title or f"curvature and gradient noise over training (train subset of {s.get('samples')} samples, "
                 f"eval mode, {s.get('gradient_variance', 'per-sample')} gradient variance)", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
