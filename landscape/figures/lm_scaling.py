"""Shallue et al./Golmant et al. for a language model next to an image classifier: steps and time to a target loss.

Both workloads train at the same batch sizes with Adam at one fixed learning rate each, and stop
at the first evaluation whose validation loss is below the workload's target:

- language model: ``gpt-tiny`` on ``pysrc`` (next-byte prediction on the standard library's
  sources), target 2.5 nats per token (a unigram model sits near 3.1), validation on 256
  held-out sequences every 10 steps;
- image classifier: the demo MLP on ``digits``, target 0.15, the 360 test images every 5 steps.

Steps to the target against batch size, with the perfect-scaling line through the smallest batch
(Shallue et al.: halving the steps per doubling is perfect scaling, a flat curve is none), and the
training wall-clock time (evaluations excluded) to the target (Golmant et al.). One fixed learning
rate per workload, not Shallue et al.'s per-batch-size tuning, so the large-batch end is a lower
bound on what tuning would give. Each run is cached (``CACHE/lm_scaling/*.json``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import FigureResult, register_figure

BATCH_SIZES = (8, 16, 32)  # a CPU-sized study: larger batches need minutes per run on a shared 2-core machine


@dataclass(frozen=True)
class Workload:
    label: str
    dataset: str
    model: str
    target_loss: float
    eval_every: int
    max_examples: int  # budget per run, in sequences or images
    lr: float = 3e-3
    test_samples: int | None = None
    model_args: dict = field(default_factory=dict)


WORKLOADS = (
    Workload("gpt-tiny on pysrc (language model)", "pysrc", "gpt-tiny", 2.5, 10, 16_000, test_samples=256),
    Workload("MLP on digits (image classifier)", "digits", "mlp", 0.15, 5, 60_000, model_args={"hidden": [64]}),
)


def _run(ctx, w: Workload, batch_size: int) -> dict:
    """One run to the target (cached): steps, training seconds, and the validation-loss curve."""
    from ..jsonfile import read_json, write_json_atomic
    from ..train import init_model, train

    path = ctx.cache / "lm_scaling" / f"{w.dataset}_{w.model}_bs{batch_size}.json"
    record = read_json(path)
    settings = {"target_loss": w.target_loss, "eval_every": w.eval_every, "max_examples": w.max_examples,
                "lr": w.lr, "test_samples": w.test_samples, "model_args": w.model_args}
    if isinstance(record, dict) and record.get("settings") == settings:
        return record
    tr, te = ctx.data("train", w.dataset), ctx.data("test", w.dataset)
    test = te if w.test_samples is None else (te.inputs[:w.test_samples], te.targets[:w.test_samples])
    model = init_model(w.model, tr, seed=0, **w.model_args)
    steps = max(1, w.max_examples // batch_size)
    result = train(model, tr, test, optimizer="adam", lr=w.lr, batch_size=batch_size, steps=steps,
                   eval_every=w.eval_every, target_loss=w.target_loss, stop_at_target=True, seed=0,
                   progress=False, device=ctx.device, dataset=w.dataset)
    m = result.meta
    record = {"settings": settings, "batch_size": batch_size, "steps": m["steps_to_target_loss"],
              "time": m["time_to_target_loss"], "time_per_step": m["train_time"] / max(1, m["step"]),
              "curve": [[h["step"], h["test_loss"]] for h in result.history]}
    write_json_atomic(path, record)
    ctx.log(f"lm_scaling: {w.dataset} batch {batch_size}: "
            + (f"{record['steps']} steps, {record['time']:.1f}s" if record["steps"] else "target not reached"))
    return record


@register_figure("lm_scaling", "Steps and time to a target validation loss against batch size: language model "
                               "next to image classifier")
def make(ctx) -> FigureResult:
    if not ctx.is_root:
        return FigureResult()
    from ..plot.canvas import new_figure

    records = {w.label: [_run(ctx, w, bs) for bs in BATCH_SIZES] for w in WORKLOADS}
    fig = new_figure(figsize=(10.5, 4.0))
    axes = fig.subplots(1, 2)
    numbers, findings = {}, []
    for (w, color) in zip(WORKLOADS, ("tab:purple", "tab:green")):
        rows = [r for r in records[w.label] if r["steps"]]
        bs = np.array([r["batch_size"] for r in rows], dtype=float)
        steps = np.array([r["steps"] for r in rows], dtype=float)
        secs = np.array([r["time"] for r in rows], dtype=float)
        numbers[w.dataset] = {"target_loss": w.target_loss, "runs": records[w.label]}
        label = f"{w.label}, loss < {w.target_loss:g}"
        axes[0].plot(bs, steps, "o-", color=color, label=label)
        axes[1].plot(bs, secs, "o-", color=color, label=label)
        if len(rows):
            axes[0].plot(bs, steps[0] * bs[0] / bs, ":", color=color, lw=1)  # perfect scaling from the smallest batch
            findings.append(f"{w.dataset}: steps to loss < {w.target_loss:g} from {int(steps[0])} (batch {int(bs[0])}) "
                            f"to {int(steps[-1])} (batch {int(bs[-1])}), {steps[0] / steps[-1]:.1f}x fewer for "
                            f"{bs[-1] / bs[0]:.0f}x the batch; time {secs[0]:.1f}s -> {secs[-1]:.1f}s")
        missing = [r["batch_size"] for r in records[w.label] if not r["steps"]]
        if missing:
            findings.append(f"{w.dataset}: target not reached within the budget at batch sizes {missing}")
    for ax, what in zip(axes, ("steps to target (dotted: perfect scaling)", "training seconds to target")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title("Shallue et al.: steps to a target validation loss", fontsize=10)
    axes[1].set_title("Golmant et al.: time to the target (Adam, one lr per workload)", fontsize=10)
    return FigureResult(paths=ctx.save(fig, "lm_scaling"), numbers=numbers, findings=findings)
