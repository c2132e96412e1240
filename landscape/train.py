"""Train one model: SGD (momentum, Nesterov) or Adam, with the metadata a batch-size study needs.

Why not a generic trainer: the studies this toolkit serves compare runs that differ only in
batch size, weight decay and seed, so a run must be exactly reproducible on CPU (a seeded
generator orders the data, the global RNG is forked and seeded for anything stochastic in the
model), must record what it was (every hyperparameter in the checkpoint's meta), and must
record *when* it got good (the step and the training wall-clock time at which the test error
first fell below a target: Shallue et al.'s steps to result, Golmant et al.'s time to result).

Data stays as two tensors on the device; a batch is an index slice of a per-epoch permutation,
so the built-in datasets train at the speed of the forward/backward passes. Weight decay is the
optimizer's ``weight_decay`` (L2 in the gradient, on every parameter, as in the loss-landscape
code). An epoch is ``n // batch_size`` full batches (``drop_last=True``) so every step of a
large-batch run really uses the batch size it claims.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .checkpoint import model_spec, reload_note, save_checkpoint
from .data import DataSpec, LabeledData, as_tensors
from .errors import LandscapeError
from .evaluation import Evaluator, evaluate, resolve_device
from .jsonfile import write_json_atomic
from .losses import LossSpec, correct_count, count_targets, get_loss, loss_name
from .models import build_model
from .models.registry import dataset_kwargs
from .schedules import LRSchedule

OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainResult:
    """The trained model (same object as passed in), its meta, and the evaluation history."""

    model: nn.Module
    meta: dict
    history: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None
    snapshots: list[Path] = field(default_factory=list)

    @property
    def test_error(self) -> float:
        return 1.0 - self.meta["test_acc"] if self.meta.get("test_acc") is not None else float("nan")


def init_model(name: str, data: LabeledData, seed: int = 0, **model_args: Any) -> nn.Module:
    """Build a model (registry name, import path or hub name) for ``data`` with a seeded init.

    Built-in models get ``data``'s input shape and class count; a user factory gets those of them
    its signature takes. The init draws from the global RNG, which is forked so the caller's random
    state is untouched.
    """
    args = dataset_kwargs(name, tuple(data.input_shape), data.num_classes)
    args.update(model_args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, **args)


def _make_optimizer(model: nn.Module, optimizer: str, lr: float, momentum: float, nesterov: bool,
                    weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        if nesterov and momentum <= 0:
            raise LandscapeError("Nesterov momentum needs --momentum > 0")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise LandscapeError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_args(batch_size: int, n: int, epochs: float | None, steps: int | None, lr: float,
                weight_decay: float, momentum: float, snapshot_every: int | None, out_dir: Any,
                target_error: float | None, has_test: bool) -> None:
    if batch_size <= 0:
        raise LandscapeError(f"batch size must be positive, got {batch_size}")
    if batch_size > n:
        raise LandscapeError(f"batch size {batch_size} exceeds the {n} training samples; use at most {n}")
    if (epochs is None) == (steps is None):
        raise LandscapeError("give exactly one training budget: epochs=... (--epochs) or steps=... (--steps)")
    if epochs is not None and not epochs > 0:
        raise LandscapeError(f"epochs must be positive, got {epochs}")
    if steps is not None and steps <= 0:
        raise LandscapeError(f"steps must be positive, got {steps}")
    if not lr > 0:
        raise LandscapeError(f"the learning rate must be positive, got {lr}")
    if weight_decay < 0:
        raise LandscapeError(f"weight decay must be >= 0, got {weight_decay}")
    if momentum < 0:
        raise LandscapeError(f"momentum must be >= 0, got {momentum}")
    if snapshot_every is not None and (snapshot_every <= 0 or out_dir is None):
        raise LandscapeError("snapshots need a positive snapshot_every (epochs) and an out_dir to write them to")
    if target_error is not None and not has_test:
        raise LandscapeError("target_error is measured on test data: pass test_data as well")


MAX_STEPS = 2 ** 53  # beyond this a float step count loses whole steps; no run gets near it


def _epoch_steps(epochs: float, steps_per_epoch: int) -> int:
    """The step budget of ``epochs``; one no run could finish (1e308 epochs: inf steps) is refused by name."""
    total = epochs * steps_per_epoch
    if not total < MAX_STEPS:
        raise LandscapeError(f"epochs must be at most {MAX_STEPS / steps_per_epoch:.3g} (2**53 steps of "
                             f"{steps_per_epoch} per epoch, more than any run can take), got {epochs:g}")
    return max(1, round(total))


def train(model: nn.Module, train_data: DataSpec, test_data: DataSpec | None = None, *,
          optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.9, nesterov: bool = False,
          batch_size: int = 128, weight_decay: float = 0.0, epochs: float | None = None,
          steps: int | None = None, schedule: str = "constant", warmup_steps: int = 0,
          milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.1, seed: int = 0,
          snapshot_every: int | None = None, out_dir: str | os.PathLike | None = None,
          eval_every: int | None = None, target_error: float | None = None, stop_at_target: bool = False,
          target_loss: float | None = None,
          drop_last: bool = True, progress: bool = True, loss: LossSpec = "crossentropy",
          device: str | torch.device | None = None, eval_batch_size: int | None = None,
          dataset: str | None = None, extra_meta: Mapping[str, Any] | None = None,
          on_step: Callable[[nn.Module, int, dict], None] | None = None) -> TrainResult:
    """Train ``model`` in place and return it with its meta and evaluation history.

    ``lr`` is the peak learning rate of ``schedule`` (constant, step, cosine, linear) after
    ``warmup_steps`` of linear warmup (see `landscape.schedules`). The budget is ``epochs`` or
    ``steps`` (exactly one). The test set is evaluated every ``eval_every`` steps (default: once
    per epoch); ``target_error`` records the first evaluated step whose test error is strictly
    below it, with the training wall-clock time (evaluations excluded) spent to get there, and
    ``target_loss`` the same for the test loss (``steps_to_target_loss``, ``time_to_target_loss``:
    language models are compared by loss). ``stop_at_target`` ends the run once every target
    given is reached.
    With ``out_dir`` the final model goes to ``out_dir/model.pt``, snapshots every
    ``snapshot_every`` epochs (epoch 0 included) to ``out_dir/snapshots/epoch_XXX.pt``, and the
    history to ``out_dir/history.json``, rewritten atomically at every evaluation.
    ``on_step(model, step, info)`` is called before the first step (step 0) and after every step,
    outside the training time and with the random state saved and restored around it, so a
    measurement in the loop (`landscape.track.Tracker.callback`) leaves the run unchanged;
    ``info`` holds the epoch, the learning rate of the next step and the last batch loss.
    """
    x, y = as_tensors(train_data)
    n = len(x)
    _check_args(batch_size, n, epochs, steps, lr, weight_decay, momentum, snapshot_every, out_dir,
                target_error, test_data is not None)
    if target_loss is not None and test_data is None:
        raise LandscapeError("target_loss is measured on test data: pass test_data as well")
    out = Path(out_dir) if out_dir is not None else None
    spec = model_spec(model)  # None for a module build_model did not make: saved as weights + meta (reload_note)
    dev = resolve_device(device, model)
    steps_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
    total_steps = int(steps) if steps is not None else _epoch_steps(float(epochs), steps_per_epoch)
    eval_every = int(eval_every) if eval_every else steps_per_epoch
    if eval_every <= 0:
        raise LandscapeError(f"eval_every must be a positive number of steps, got {eval_every}")
    sched = LRSchedule(float(lr), total_steps, schedule, int(warmup_steps), tuple(milestones), float(gamma))
    loss_fn = get_loss(loss)

    flags = [(m, m.training) for m in model.modules()]
    model.to(dev)
    x, y = x.to(dev), y.to(dev)
    opt = _make_optimizer(model, optimizer, float(lr), float(momentum), bool(nesterov), float(weight_decay))
    test_eval = Evaluator(model, test_data, loss, eval_batch_size, dev) if test_data is not None else None
    gen = torch.Generator().manual_seed(int(seed))
    if dataset is None:
        dataset = getattr(train_data, "name", None) or getattr(getattr(train_data, "dataset", None), "name", "custom")

    meta: dict[str, Any] = {
        "model": spec["name"] if spec else type(model).__name__, "model_args": dict(spec["args"]) if spec else {},
        "dataset": dataset, "n_train": n, "optimizer": optimizer, "lr": float(lr), "momentum": float(momentum),
        "nesterov": bool(nesterov), "batch_size": int(batch_size), "weight_decay": float(weight_decay),
        "schedule": schedule, "warmup_steps": int(warmup_steps), "seed": int(seed), "loss": loss_name(loss),
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "budget_epochs": epochs,
        "budget_steps": steps, "drop_last": drop_last, "device": str(dev), "target_error": target_error,
        "target_loss": target_loss, "steps_to_target_loss": None, "time_to_target_loss": None,
        "steps_to_target": None, "time_to_target": None, "epochs_to_target": None, "diverged": False,
        "torch_version": str(torch.__version__),
    }
    if schedule == "step":
        meta.update(milestones=list(milestones), gamma=float(gamma))
    if extra_meta:
        meta.update(dict(extra_meta))
    history: list[dict] = []
    snapshots: list[Path] = []
    if out is not None:  # a rerun into the same directory replaces the old run, stale snapshots included
        for old in (out / "snapshots").glob("epoch_*.pt"):
            old.unlink()

    def snapshot(epoch: int, step: int) -> None:
        path = out / "snapshots" / f"epoch_{epoch:03d}.pt"
        save_checkpoint(path, model, {**meta, "epoch": epoch, "step": step, "snapshot": True})
        snapshots.append(path)

    def write_history(status: str) -> None:
        if out is not None:
            write_json_atomic(out / "history.json", {"status": status, "meta": meta, "history": history})

    from tqdm.auto import tqdm

    train_time = 0.0
    start = time.perf_counter()
    run_loss = run_correct = run_count = 0.0
    step = 0
    stopped = False
    if snapshot_every:
        snapshot(0, 0)
    bar = tqdm(total=total_steps, desc=f"train bs={batch_size} wd={weight_decay:g}", unit="step",
               disable=not progress, leave=False, dynamic_ncols=True)
    try:
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(int(seed))
            model.train()

            def call_hook(batch_loss: float | None) -> None:
                if on_step is not None:
                    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
                        on_step(model, step, {"epoch": step / steps_per_epoch, "lr": sched(min(step, total_steps - 1)),
                                              "batch_loss": batch_loss})
                    model.train()
            call_hook(None)
            while step < total_steps and not stopped:
                perm = torch.randperm(n, generator=gen).to(dev)
                for b in range(steps_per_epoch):
                    if step >= total_steps:
                        break
                    t0 = time.perf_counter()
                    idx = perm[b * batch_size:(b + 1) * batch_size]
                    xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                    lr_now = sched(step)
                    for group in opt.param_groups:
                        group["lr"] = lr_now
                    outputs = model(xb)
                    batch_loss = loss_fn(outputs, yb)
                    opt.zero_grad(set_to_none=True)
                    batch_loss.backward()
                    opt.step()
                    step += 1
                    loss_value = float(batch_loss.detach())  # synchronizes on GPU, so the timing is honest
                    train_time += time.perf_counter() - t0
                    weight = count_targets(yb)  # samples, or counted tokens of (B, T) targets
                    run_loss += loss_value * weight
                    if not yb.is_floating_point():  # class or token indices (argmax over the last axis)
                        run_correct += float(correct_count(outputs.detach(), yb))
                    run_count += weight
                    bar.update(1)
                    if not math.isfinite(loss_value):
                        meta["diverged"] = True
                        stopped = True
                    else:
                        call_hook(loss_value)
                    if step % eval_every == 0 or step == total_steps or stopped:
                        _sync(dev)
                        entry = {"step": step, "epoch": step / steps_per_epoch, "lr": lr_now,
                                 "train_loss": run_loss / run_count, "train_acc": run_correct / run_count,
                                 "train_time": train_time, "wall_time": time.perf_counter() - start}
                        run_loss = run_correct = run_count = 0.0
                        if test_eval is not None:
                            test_loss, test_acc = test_eval()
                            entry.update(test_loss=test_loss, test_acc=test_acc, test_error=1.0 - test_acc)
                            if (target_error is not None and meta["steps_to_target"] is None
                                    and 1.0 - test_acc < target_error):
                                meta.update(steps_to_target=step, time_to_target=train_time,
                                            epochs_to_target=step / steps_per_epoch)
                            if (target_loss is not None and meta["steps_to_target_loss"] is None
                                    and test_loss < target_loss):
                                meta.update(steps_to_target_loss=step, time_to_target_loss=train_time)
                            reached = [meta[k] is not None for k, t in (("steps_to_target", target_error),
                                                                        ("steps_to_target_loss", target_loss))
                                       if t is not None]
                            stopped = stopped or (stop_at_target and bool(reached) and all(reached))
                            bar.set_postfix(loss=f"{entry['train_loss']:.3g}", test_acc=f"{test_acc:.3f}")
                        history.append(entry)
                        write_history("running")
                    if snapshot_every and step % steps_per_epoch == 0 and (step // steps_per_epoch) % snapshot_every == 0:
                        snapshot(step // steps_per_epoch, step)
                    if stopped:
                        break
    finally:
        bar.close()
        for m, was_training in flags:
            m.training = was_training

    train_loss, train_acc = evaluate(model, (x, y), loss, eval_batch_size, dev)
    meta.update(step=step, epoch=step / steps_per_epoch, train_loss=train_loss, train_acc=train_acc,
                train_error=1.0 - train_acc, train_time=train_time, wall_time=time.perf_counter() - start)
    if test_data is not None:  # the last step's evaluation, when it had one: same weights, same numbers
        last = history[-1] if history and history[-1]["step"] == step and "test_loss" in history[-1] else None
        test_loss, test_acc = (last["test_loss"], last["test_acc"]) if last else test_eval()
        meta.update(test_loss=test_loss, test_acc=test_acc, test_error=1.0 - test_acc)
    checkpoint = None
    if out is not None:
        checkpoint = save_checkpoint(out / "model.pt", model, meta)
        if spec is None:
            import warnings

            warnings.warn(reload_note(checkpoint, model), stacklevel=2)
    write_history("diverged" if meta["diverged"] else "finished")
    return TrainResult(model=model, meta=meta, history=history, checkpoint=checkpoint, snapshots=snapshots)
