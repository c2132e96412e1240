"""Learning-rate schedules and batch-size scaling rules, as plain functions of the step.

A schedule is a pure function ``step -> lr`` so that a run's learning rate at any step can be
recomputed (and tested) by hand, and sweeps can compare budgets in steps (Hoffer et al.) or in
epochs without re-deriving the shape of the curve.

Conventions (what the tests check):

- Warmup (Goyal et al. 2017) is linear over the first ``warmup_steps`` optimizer steps:
  ``lr(s) = peak * (s + 1) / warmup_steps`` for ``s < warmup_steps``; the last warmup step
  reaches the peak. The decay that follows runs over the remaining ``total - warmup`` steps.
- ``step``: the peak times ``gamma ** k`` after the k-th milestone, milestones given as
  fractions of the post-warmup steps (default 0.5 and 0.75, as in the loss-landscape VGG runs).
- ``cosine``: ``peak * 0.5 * (1 + cos(pi * t / T))`` with ``t`` steps after warmup of ``T``.
- ``linear``: ``peak * (1 - t / T)``, Shallue et al.'s linear decay (to 0 at the end).
- Scaling rules from a base batch size ``B0``: ``none``: lr; ``linear``: lr * B / B0
  (Goyal et al.); ``sqrt``: lr * sqrt(B / B0) (Hoffer et al.).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from .errors import LandscapeError

SCHEDULES = ("constant", "step", "cosine", "linear")
SCALING_RULES = ("none", "linear", "sqrt")


def scale_lr(lr: float, batch_size: int, base_batch_size: int | None = None, rule: str = "none") -> float:
    """The learning rate for ``batch_size`` when ``lr`` was tuned at ``base_batch_size``."""
    if rule not in SCALING_RULES:
        raise LandscapeError(f"unknown lr scaling rule {rule!r}; use one of {', '.join(SCALING_RULES)}")
    if rule == "none":
        return float(lr)
    if not base_batch_size or base_batch_size <= 0:
        raise LandscapeError(f"lr scaling rule {rule!r} needs a positive base batch size (--base-batch-size)")
    ratio = batch_size / base_batch_size
    return float(lr) * (ratio if rule == "linear" else math.sqrt(ratio))


@dataclass(frozen=True)
class LRSchedule:
    """``schedule(step)`` is the learning rate used for optimizer step ``step`` (0-based)."""

    peak_lr: float
    total_steps: int
    name: str = "constant"
    warmup_steps: int = 0
    milestones: Sequence[float] = field(default=(0.5, 0.75))
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise LandscapeError(f"unknown lr schedule {self.name!r}; use one of {', '.join(SCHEDULES)}")
        if self.total_steps <= 0:
            raise LandscapeError(f"a schedule needs a positive number of steps, got {self.total_steps}")
        if self.warmup_steps < 0:
            raise LandscapeError(f"warmup steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_steps > self.total_steps:
            raise LandscapeError(f"warmup ({self.warmup_steps} steps) is longer than the whole run "
                                 f"({self.total_steps} steps); shorten --warmup-steps")
        if any(not 0 < m < 1 for m in self.milestones):
            raise LandscapeError(f"step-schedule milestones are fractions of the run in (0, 1), got "
                                 f"{list(self.milestones)}")
        if not self.peak_lr > 0:
            raise LandscapeError(f"the learning rate must be positive, got {self.peak_lr}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        if decay_steps <= 0:
            return self.peak_lr
        t = min(step - self.warmup_steps, decay_steps)
        frac = t / decay_steps
        if self.name == "constant":
            return self.peak_lr
        if self.name == "step":
            k = sum(1 for m in self.milestones if frac >= m)
            return self.peak_lr * self.gamma ** k
        if self.name == "cosine":
            return self.peak_lr * 0.5 * (1.0 + math.cos(math.pi * frac))
        return self.peak_lr * (1.0 - frac)  # linear decay

    def values(self) -> list[float]:
        """The learning rate at every step of the run (for plots and checks)."""
        return [self(s) for s in range(self.total_steps)]
