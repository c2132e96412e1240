"""BatchNorm running statistics at moved weights: recompute, interpolate or keep them.

An eval-mode BatchNorm normalizes with the running mean and variance stored at training time.
Once the weights move (a random direction, the line between two checkpoints) those statistics
no longer describe the activations, and interpolating them between two networks is worse:
past either end the extrapolated variances go negative, are clamped, and the loss there is an
artefact of the statistics rather than of the landscape (the mode-connectivity literature
recomputes them at every point for this reason). Three choices:

- ``recompute``: at every point, reset the running statistics and re-estimate them from a fixed,
  seeded set of training batches, as a cumulative average over those batches (momentum None,
  exactly what ``torch.optim.swa_utils.update_bn`` does). Only BatchNorm layers run in training
  mode while doing so; dropout and the rest stay in eval mode, so the estimate is deterministic.
- ``interpolate``: the statistics move with the direction like any other state tensor (the
  behaviour before this option); a variance extrapolated below zero is clamped, with a warning.
- ``keep``: the statistics stay those of the model the surface is centred on.

Where no direction moves the statistics, ``keep`` and ``interpolate`` are the same computation
and are recorded as ``interpolate`` (as files written before this option were computed).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .batches import data_length, take
from .data import DataSpec, as_tensors, iter_batches, subset_indices
from .errors import LandscapeError

BN_STATS = ("recompute", "interpolate", "keep")
DEFAULT_SAMPLES = 2000
DEFAULT_BATCH_SIZE = 128
_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers that keep running statistics (the only ones eval mode depends on)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]


def is_stat_name(name: str) -> bool:
    """True for state_dict names of BatchNorm running statistics."""
    return name.endswith(_STAT_SUFFIXES)


def moves_stats(directions: Sequence[Mapping[str, torch.Tensor]]) -> bool:
    """Whether any direction has a non-zero entry on a BatchNorm running statistic."""
    return any(is_stat_name(n) and bool(t.any()) for d in directions for n, t in d.items())


def resolve_bn_stats(bn_stats: str, model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]]) -> str:
    """The mode actually used: ``auto`` is ``recompute`` where a direction moves BatchNorm statistics.

    (Lines and planes between checkpoints ask for ``recompute`` explicitly, see `landscape.workflow`.)
    A model without BatchNorm, or ``keep`` with directions that leave the statistics alone, is
    ``interpolate``: every mode computes the same thing there.
    """
    if bn_stats not in ("auto", *BN_STATS):
        raise LandscapeError(f"bn_stats must be one of auto, {', '.join(BN_STATS)}; got {bn_stats!r}")
    if not batchnorms(model):
        return "interpolate"
    moving = moves_stats(directions)
    if bn_stats == "auto":
        return "recompute" if moving else "interpolate"
    if bn_stats == "keep" and not moving:
        return "interpolate"
    return bn_stats


def without_stats(directions: Sequence[Mapping[str, torch.Tensor]]) -> list[dict]:
    """The directions with their BatchNorm-statistic entries left out (they are set another way)."""
    return [{n: t for n, t in d.items() if not is_stat_name(n)} for d in directions]


class StatsRecompute:
    """Re-estimates every BatchNorm's running statistics of ``model`` on fixed batches, per call.

    The batches are ``samples`` training samples drawn by ``seed`` (all of them when the split is
    smaller), cut in order into batches of ``batch_size`` and moved to the device once. Each call
    resets the statistics and averages the batch statistics over those batches with equal weight
    (``momentum=None``, as ``torch.optim.swa_utils.update_bn``); `restore` puts back the model's
    own statistics, momenta and modes.
    """

    def __init__(self, model: nn.Module, data: DataSpec, *, samples: int | None = DEFAULT_SAMPLES,
                 batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0, device: torch.device | str | None = None):
        if samples is not None and samples < 1:
            raise LandscapeError(f"bn_samples must be positive, got {samples}")
        if batch_size < 2:
            raise LandscapeError(f"bn_batch_size must be at least 2 (a batch variance needs two samples), "
                                 f"got {batch_size}")
        self.model = model
        self.norms = batchnorms(model)
        n_total = data_length(data)
        idx = subset_indices(n_total, samples if samples and samples < n_total else None, seed)
        x, _ = as_tensors(take(data, idx))  # only the drawn samples are read: the split may exceed memory
        if device is None:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.indices = idx
        self.n = len(x)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        batches = [xb for xb, _ in iter_batches(x, x, self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < 2:  # a one-sample batch has no variance: join it to the one before
            batches[-2:] = [torch.cat(batches[-2:])]
        self.batches = [xb.to(device) for xb in batches]
        self.saved = [(m.running_mean.clone(), m.running_var.clone(),
                       None if m.num_batches_tracked is None else m.num_batches_tracked.clone(), m.momentum)
                      for m in self.norms]

    @property
    def fingerprint(self) -> dict[str, Any]:
        from .surface import subset_hash

        return {"bn_samples": self.n, "bn_subset": subset_hash(self.indices), "bn_batch_size": self.batch_size,
                "bn_seed": self.seed}

    @torch.no_grad()
    def __call__(self) -> None:
        flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            for m in self.norms:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            for xb in self.batches:
                self.model(xb)
        finally:
            for m, (_, _, _, momentum) in zip(self.norms, self.saved):
                m.momentum = momentum
            for m, was_training in flags:
                m.training = was_training

    @torch.no_grad()
    def restore(self) -> None:
        for m, (mean, var, count, momentum) in zip(self.norms, self.saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            if count is not None:
                m.num_batches_tracked.copy_(count)
            m.momentum = momentum


def negative_variance_warning(coords: Sequence[float], count: int) -> str:
    """The warning `interpolate` gives where an extrapolated running variance went below zero."""
    at = ", ".join(f"{c:g}" for c in coords)
    return (f"BatchNorm running variance extrapolated below zero at ({at}) in {count} channel(s), clamped to 0: "
            "the loss there comes from the interpolated statistics, not the landscape; use bn_stats='recompute' "
            "(--bn-stats recompute)")
