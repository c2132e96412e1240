"""Cost before work: what a long command is about to do, and how long that takes, before it starts.

A 51x51 surface, a Hessian density with 800 products or a PAC-Bayes bisection can run for an hour
on a CPU; the user should know that before paying it. A `Plan` lists the work in the units that
decide its cost (grid points x samples, Hessian-vector products x samples, gradient passes x
samples) and multiplies it by a seconds-per-sample measured in a short pilot on the user's own
model, data and settings (a few hundred samples, run twice, the second timed), so the estimate
follows the machine and the model instead of a table. Counts that depend on convergence (Lanczos,
L-BFGS-B, bisection) use a typical value and say so; ``--dry-run`` prints the plan and stops.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .batches import data_length, head_columns

PILOT_SAMPLES = 256
MAX_PILOT_SAMPLES = 1024  # a surface pilot reads one batch of the run's size per split, up to this
BLOCK = 8  # products per block in the trace and the density (landscape.hessian.lanczos.DEFAULT_BLOCK_SIZE)
PILOT_BLOCK = 4  # the pilot times one product and one block of this many: F + S and F + 4 S
HVP_PILOT_SAMPLES = 256  # half a batch of the Hessian operator's default size: close to its per-batch cost, cheap
# Lanczos steps a top-k run typically takes before every wanted value meets its tol (trained digits
# convnets, BENCHMARKS.md: 5-7 for k = 1, 11.8-13.5 for k = 5 on six checkpoints; clustered spectra at
# initialisation take more, 37 for k = 5); the plan also says "at most" the cap.
LANCZOS_TYPICAL = (4, 2)  # steps ~ 4 + 2 k
EIG_STEPS_PER_POINT = 16  # surface --eig: one Lanczos run for both ends of the spectrum per point
PACBAYES_SIGMAS = 17  # sigmas a PAC-Bayes bisection evaluates at --bisect-tol 1e-2: bracket, then halving


@dataclass
class Part:
    """One piece of planned work: ``passes`` passes of ``kind`` over ``samples`` samples each."""

    what: str
    passes: int
    samples: int
    kind: str  # "point" (a surface point: loss and accuracy), "hvp", "gradient" or "forward"
    seconds_per_sample: float
    note: str = ""

    @property
    def seconds(self) -> float:
        return self.passes * self.samples * self.seconds_per_sample


@dataclass
class Plan:
    """The work a command is about to do and its time, from a measured pilot."""

    command: str
    parts: list[Part] = field(default_factory=list)
    pilot: str = ""
    workers: int = 1
    skipped: str = ""  # e.g. "1200 of 2601 points already computed"

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts) / max(self.workers, 1)

    def lines(self) -> list[str]:
        out = [f"plan ({self.command}): about {format_seconds(self.seconds)}"
               + (f" on {self.workers} processes" if self.workers > 1 else "")
               + (f"; {self.skipped}" if self.skipped else "")]
        for p in self.parts:
            unit = {"point": "points", "hvp": "Hessian-vector products", "gradient": "gradient passes",
                    "forward": "forward passes"}[p.kind]
            out.append(f"  {p.what}: {p.passes:,} {unit} x {p.samples:,} samples = about "
                       f"{format_seconds(p.seconds / max(self.workers, 1))}" + (f" ({p.note})" if p.note else ""))
        if self.pilot:
            out.append(f"  {self.pilot}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "unknown"
    if s < 90:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def time_per_call(fn: Callable[[], Any], repeats: int = 2, warm: bool = True) -> float:
    """Seconds of one call of ``fn``: one untimed warm-up call, then the fastest of ``repeats``."""
    if warm:
        fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _head(data: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples, read no further (`batches.head_columns`): data may exceed memory."""
    from .data import one_input

    return one_input(*head_columns(data, n))


# ------------------------------------------------------------------ pilots
def pass_seconds_per_sample(model: nn.Module, data: Any, kinds: Sequence[str], *, loss: Any = "crossentropy",
                            batch_size: int | None = None, device: Any = None, params: Any = None,
                            weight_decay: float = 0.0, pilot_samples: int = PILOT_SAMPLES) -> dict[str, float]:
    """Measured seconds per sample of a forward pass, a gradient pass and/or a Hessian-vector product.

    Runs on the first ``pilot_samples`` samples of ``data`` with the command's own loss, batch
    size, device and parameters, in eval mode, and gives the weights back untouched.
    """
    from .evaluation import eval_mode
    from .hessian import HessianOperator, RetainedProducts
    from .losses import get_loss

    x, y = _head(data, pilot_samples)
    n = len(x)
    out: dict[str, float] = {}
    with eval_mode(model):
        if "hvp" in kinds:  # a single product costs F + S, a block of b products F + b S (`HessianOperator.mm`)
            op = HessianOperator(model, (x, y), loss, batch_size, params, weight_decay, device)
            V = torch.randn(PILOT_BLOCK, op.num_params, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(0))
            one = time_per_call(lambda: op.mv(V[0]), repeats=1)
            block = time_per_call(lambda: op.mm(V), repeats=1, warm=False)
            second = max((block - one) / (PILOT_BLOCK - 1), 0.05 * one)
            out["hvp"], out["hvp_second"] = one / n, second / n
            # What the eigenvalue solvers run on: the gradient graphs built once, then a second backward
            # per product (`RetainedProducts`), when the graphs fit.
            kept = RetainedProducts(op)
            out["graph_build"] = time_per_call(kept.prepare, repeats=1, warm=False) / n
            out["hvp_kept"] = time_per_call(lambda: kept.mv(V[0]), repeats=1) / n
            out["graph_bytes"] = (kept.graph_bytes or 0) / n
            kept.release()
        if "gradient" in kinds or "forward" in kinds:
            dev = next(model.parameters()).device if device is None else torch.device(device)
            dtype = next(model.parameters()).dtype
            xs = x.to(dev, dtype if x.is_floating_point() else x.dtype)
            ys = y.to(dev)
            fn, bs = get_loss(loss), batch_size or n

            def passes(grad: bool) -> None:
                with torch.set_grad_enabled(grad):
                    for i in range(0, n, bs):
                        value = fn(model(xs[i:i + bs]), ys[i:i + bs])
                        if grad:
                            value.backward()
                model.zero_grad(set_to_none=True)

            if "gradient" in kinds:
                out["gradient"] = time_per_call(lambda: passes(True)) / n
            if "forward" in kinds:
                out["forward"] = time_per_call(lambda: passes(False)) / n
    return out


def blocked_seconds_per_product(n: int, per_sample: Mapping[str, float], block: int = BLOCK) -> float:
    """Seconds per sample of each of ``n`` products run ``block`` at a time (one forward per block)."""
    one, second = per_sample["hvp"], per_sample["hvp_second"]
    first = max(one - second, 0.0)
    return (math.ceil(n / block) * first + n * second) / n


def _pilot_text(n: int, seconds: Mapping[str, float]) -> str:
    names = {"hvp": "Hessian-vector product", "hvp_second": "each further product in a block",
             "graph_build": "gradient graphs", "hvp_kept": "a product on them",
             "gradient": "gradient", "forward": "forward"}
    what = ", ".join(f"{names[k]} {v * 1e3:.3g} ms/sample" for k, v in seconds.items() if k in names)
    return f"measured on a pilot of {n} samples: {what}"


# ------------------------------------------------------------------ surfaces
def surface_plan(job: Any, *, workers: int = 1, pilot_samples: int = PILOT_SAMPLES) -> Plan:
    """The plan of a `landscape.workflow.SurfaceJob`: points still missing x samples per split, from a pilot.

    The pilot evaluates two points of a one-direction surface on ``pilot_samples`` samples of each
    split through `compute_surface` itself (same loss, BatchNorm folding, layout and precision), so
    the per-point overhead of moving the weights is in the estimate. ``--eig`` adds one Lanczos run
    per point (typically tens of Hessian-vector products on ``--eig-samples``).
    """
    from .surface import compute_surface, load_surface
    from .workflow import _check_eig_settings, job_data, job_directions, load_job_checkpoint

    if job.eig:  # bad --eig-* values are reported before anything is loaded, as the run itself does
        _check_eig_settings(job)
    from .imports import default_loss

    base = load_job_checkpoint(job.ckpt, job, "cpu" if job.device is None else job.device)
    loss = default_loss(job.loss, base.meta)
    directions, _ = job_directions(job, base)
    _, splits = job_data(job, base)
    total = len(job.x) * (1 if job.y is None else len(job.y))
    todo, skipped = total, ""
    path = job.surface_path()
    if path.exists():
        try:
            done = int(load_surface(path, quiet=True).done.sum())  # the run warns about its journal
        except Exception:  # a file from other settings is refused later, by the run itself
            done = 0
        if 0 < done <= total:
            todo, skipped = total - done, f"{done:,} of {total:,} points already computed"
    sizes = {s: data_length(d) for s, d in splits.items()}
    per_point = {s: min(n, job.samples) if job.samples else n for s, n in sizes.items()}
    from .evaluation import eval_mode, remembered_choices

    # The run's batch size and layout when they were measured before (the usual case after a first
    # run): a pilot at another batch or layout misjudges the per-point cost (2.2x over for the digits
    # convnet, measured batch 512 channels-last against the pilot's old 256 contiguous).
    head = _head(next(iter(splits.values())), 1)[0]
    device = torch.device("cpu" if job.device is None else job.device)
    seen_batch, seen_layout = remembered_choices(base.model, head.to(device)) if torch.is_tensor(head) else (None, None)
    batch_size = job.batch_size or seen_batch or 256
    layout = job.layout if job.layout != "auto" else (seen_layout or "contiguous")
    pilot = {s: _head(d, max(pilot_samples, min(batch_size, MAX_PILOT_SAMPLES))) for s, d in splits.items()}
    n_pilot = sum(len(v[0]) for v in pilot.values())

    with torch.no_grad(), eval_mode(base.model):  # data the model cannot take: its one-line error, first
        param = next(base.model.parameters())
        for xs, _ in pilot.values():
            base.model(xs[:1].to(param.device, param.dtype if xs.is_floating_point() else xs.dtype))

    def points(k: int) -> Callable[[], Any]:
        return lambda: compute_surface(
            base.model, directions[:1], pilot, np.linspace(0.0, 1e-3, k), None, None, loss=loss,
            batch_size=batch_size, device=job.device, precision=job.precision or "fp32",
            layout=layout, fold_bn=job.fold_bn, progress=False,
            comm=None)

    one, three = time_per_call(points(1), repeats=1), time_per_call(points(3), repeats=1, warm=False)
    per_sample = max(three - one, 0.1 * one) / (2 * n_pilot)  # a point's own cost, not the call's setup
    samples = sum(per_point.values())
    split_text = " + ".join(f"{s} {n:,}" for s, n in per_point.items())
    parts = [Part("surface points", todo, samples, "point", per_sample,
                  note=f"{split_text} samples; loss and accuracy" + ("" if job.rtol is None else
                                                                     "; --rtol stops points early, so less")) ]
    pilot_text = f"measured on a pilot of {n_pilot} samples: {per_sample * 1e3:.3g} ms per point and sample"
    if job.eig:  # one Lanczos run per point on the train split (or its --eig-samples subset)
        train = splits.get("train", next(iter(splits.values())))
        n_train = data_length(train)
        eig_n = min(job.eig_samples or n_train, n_train)
        hvp = pass_seconds_per_sample(base.model, train, ["hvp"], loss=loss, device=job.device,
                                      pilot_samples=pilot_samples)["hvp"]  # one Lanczos product at a time
        steps = min(job.eig_max_iter, EIG_STEPS_PER_POINT)
        parts.append(Part("Hessian extremes per point (--eig)", todo * steps, eig_n, "hvp", hvp,
                          note=f"about {steps} products per point, at most {job.eig_max_iter}"))
        pilot_text += f"; a Hessian-vector product {hvp * 1e3:.3g} ms/sample"
    return Plan("surface", parts, pilot_text, workers, skipped)


# ------------------------------------------------------------------ Hessian
def lanczos_steps(k: int, which: str, n_params: int, max_iter: int | None) -> tuple[int, int]:
    """(typical, at most) Lanczos products for ``k`` eigenvalues at one end (``both``: each end)."""
    cap = min(n_params, max_iter if max_iter is not None else 300)
    need = 2 * k if which == "both" else k
    return min(cap, LANCZOS_TYPICAL[0] + LANCZOS_TYPICAL[1] * need), cap


def hessian_plan(op: Any, data: Any, *, ends: Sequence[str], k: int, method: str, max_iter: int | None, trace: bool,
                 probes: int, density: bool, density_iter: int, density_runs: int, float32_check: bool,
                 pilot_samples: int = HVP_PILOT_SAMPLES) -> Plan:
    """The Hessian-vector products ``landscape hessian`` is about to run, timed by a pilot on ``op``'s model
    and the first samples of ``data`` (the data ``op`` runs over)."""
    from .hessian.precision import CHECK_SAMPLES
    from .hessian.retained import DEFAULT_MAX_BYTES

    costs = pass_seconds_per_sample(op.model, data, ["hvp"], loss=op.settings["loss"],
                                    batch_size=op.settings["batch_size"], device=op.device,
                                    params=[n for n, _ in op.named_params], weight_decay=op.weight_decay,
                                    pilot_samples=pilot_samples)
    hvp = costs["hvp"]
    n = op.num_samples
    # Every solver runs on `RetainedProducts`: when the graphs fit, each run builds them once and then
    # pays only the second backward per product.
    kept = costs["graph_bytes"] * n <= DEFAULT_MAX_BYTES
    solve = costs["hvp_kept"] if kept else hvp
    parts = []
    for which in ends:
        if kept:
            parts.append(Part(f"{which}: gradient graphs (kept, {costs['graph_bytes'] * n / 2 ** 20:,.0f} MiB)", 1, n,
                              "gradient", costs["graph_build"], note="built once, then each product is a second "
                                                                     "backward on them"))
        if method != "power":  # lanczos, block, or auto (which runs one of the two)
            typical, cap = lanczos_steps(k, which, op.num_params, max_iter)
            solver = "block Lanczos" if method == "block" else "Lanczos"
            parts.append(Part(f"{which} {k} eigenvalues ({solver})", typical, n, "hvp", solve,
                              note=f"stops at convergence: typically about {typical}, at most {cap}"))
        else:
            cap = max_iter if max_iter is not None else 1000
            typical = min(cap, 100) * k
            parts.append(Part(f"{which} {k} eigenvalues (power)", typical, n, "hvp", solve,
                              note=f"stops at convergence: at most {cap} per eigenvalue"))
    if float32_check:
        parts.append(Part("float32 rounding check (float64 products)", 2, min(CHECK_SAMPLES, n), "hvp", 2 * hvp))
    if trace:
        parts.append(Part(f"trace ({probes} probes)", probes, n, "hvp", blocked_seconds_per_product(probes, costs),
                          note=f"{BLOCK} at a time"))
    if density:
        steps = min(density_iter, op.num_params)
        parts.append(Part(f"density (SLQ, {density_runs} runs x {steps} steps)", density_runs * steps, n, "hvp",
                          blocked_seconds_per_product(density_runs, costs), note="the runs in lockstep"))
    return Plan("hessian", parts, _pilot_text(min(pilot_samples, n), costs))


# ------------------------------------------------------------------ sharpness
def sharpness_plan(model: nn.Module, data: Any, measures: Sequence[str], settings: Mapping[str, Any], *,
                   loss: Any = "crossentropy", batch_size: int | None = None, device: Any = None,
                   params: Any = None, pilot_samples: int = PILOT_SAMPLES) -> Plan:
    """Gradient and forward passes of each sharpness measure, timed by a pilot.

    ``settings`` holds the measures' options (``max_iter``, ``steps``, ``mc_samples``). L-BFGS-B
    and the PAC-Bayes bisection stop on their own; their counts are typical values.
    """
    kinds = set()
    parts: list[tuple[str, int, str, str]] = []
    for name in dict.fromkeys(measures):
        if name == "keskar":
            it = int(settings.get("max_iter") or 10)
            parts.append(("keskar", it + 2, "gradient", f"at most {it} L-BFGS-B iterations"))
        elif name == "adaptive":
            steps = int(settings.get("steps") or 20)
            parts.append(("adaptive", steps + 1, "gradient", ""))
        elif name == "average":
            draws = int(settings.get("mc_samples") or 20)
            parts.append(("average", draws + 1, "forward", f"{draws} draws"))
        elif name == "pacbayes":
            draws = int(settings.get("mc_samples") or 10)
            parts.append(("pacbayes", PACBAYES_SIGMAS * draws + 1, "forward",
                          f"about {PACBAYES_SIGMAS} sigmas x {draws} draws (bisection)"))
    kinds = {p[2] for p in parts}
    seconds = pass_seconds_per_sample(model, data, sorted(kinds), loss=loss, batch_size=batch_size, device=device,
                                      params=params, pilot_samples=pilot_samples)
    n = data_length(data)
    plan_parts = [Part(name, passes, n, kind, seconds[kind], note) for name, passes, kind, note in parts]
    return Plan("sharpness", plan_parts, _pilot_text(min(pilot_samples, n), seconds))


def announce(make_plan: Callable[[], Plan], dry_run: bool) -> bool:
    """Print the plan (on stdout, before the work); True when ``--dry-run`` says to stop here.

    A pilot that fails on bad input (a dataset of the wrong shape, say) prints nothing: the run
    itself then reports the problem in its own words; with ``--dry-run`` the failure is the answer.
    """
    from .errors import LandscapeError

    try:
        plan = make_plan()
    except LandscapeError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the pilot is the job's, reported by the run
        if dry_run:
            first = (str(e).strip().splitlines() or [""])[0]
            raise LandscapeError(f"cannot plan this job, its pilot failed: {type(e).__name__}: {first}") from None
        return False
    print(str(plan) + ("\n(dry run: nothing computed)" if dry_run else ""), flush=True)
    return dry_run
