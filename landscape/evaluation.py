"""Loss and accuracy of one weight vector over a dataset.

Sample-weighted means (the last, smaller batch counts for what it holds), eval mode for every
measurement (BN statistics must not move), and the model handed back in the mode it came in.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import DataSpec
from .errors import LandscapeError
from .losses import IGNORE_INDEX, LossSpec, correct_count, float_targets
from .risk import PRECISIONS, EmpiricalRisk, check_precision, eval_mode, precision_context, resolve_device

DEFAULT_BATCH_SIZE = 256
__all__ = ["Evaluator", "AdaptiveEvaluator", "evaluate", "eval_mode", "resolve_device", "precision_context",
           "PRECISIONS", "per_sample_loss", "DEFAULT_BATCH_SIZE", "BATCH_CANDIDATES", "time_forward",
           "measure_batch_size", "measure_layout", "channels_last_model", "cached_batch_size", "cached_layout",
           "remembered_choices"]


def per_sample_loss(loss: LossSpec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """Each sample's loss summed over its counted targets (for standard errors); None for user callables.

    A batch's mean loss is ``per_sample(out, y).sum() / count_targets(y)``: one loss per sample for
    class targets (0 where the target is `IGNORE_INDEX`), and for tokens ``(B, T, V)`` with ``(B, T)``
    the sum over the sequence's counted tokens, so that a dataset mean weighs tokens, not sequences.
    """
    if loss == "crossentropy":
        return _per_sample_cross_entropy
    if loss == "mse":
        return lambda out, y: ((out - float_targets(out, y)) ** 2).reshape(len(out), -1).mean(dim=1)
    return None


def _per_sample_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if out.dim() >= 3 and y.dim() == out.dim() - 1 and not y.is_floating_point():  # tokens: classes last
        per_token = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX,
                                    reduction="none")
        return per_token.reshape(len(y), -1).sum(dim=1)
    return F.cross_entropy(out, y, ignore_index=IGNORE_INDEX, reduction="none")


class Evaluator:
    """Loss and accuracy of the model's *current* weights: a view on `EmpiricalRisk.evaluate`.

    Built once per surface: with the data resident, inputs are moved and sliced into batches up
    front, so a grid point costs forward passes and nothing else. ``options`` go to the risk
    (``data_on=``, ``samples=``, ``seed=``, ``target_key=``).
    """

    default_batch_size = DEFAULT_BATCH_SIZE

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, device: str | torch.device | None = None,
                 precision: str = "fp32", channels_last: bool = False, **options: Any):
        check_precision(precision)
        self.precision = precision
        self.risk = EmpiricalRisk(model, data, loss=loss, batch_size=batch_size or self.default_batch_size,
                                  device=device, channels_last=channels_last,
                                  **options)
        self.model, self.device, self.loss_fn = model, self.risk.device, self.risk.loss_fn
        self.n, self.batch_size, self.batches = self.risk.num_samples, self.risk.batch_size, self.risk.batches

    def __call__(self) -> tuple[float, float]:
        return self.risk.evaluate(self.precision)


class AdaptiveEvaluator(Evaluator):
    """Loss on a growing prefix of one fixed random permutation, stopped at a relative precision.

    The same order at every grid point keeps surfaces smooth (neighbouring points share their
    samples). It stops once the standard error of the mean loss, with the finite-population
    correction (zero when all samples are used), is below ``rtol`` times the mean.

    After `set_control` (done by `compute_surface` at the centre of the grid) each sample's loss
    at the centre is a control variate: its mean over *all* samples is known exactly, and
    per-sample losses at nearby points are strongly correlated with it, so the regression
    estimator ``mean(l) - b (mean(c) - mean_all(c))`` reaches the same precision with several
    times fewer samples (its variance is ``var(l) (1 - rho^2)``). Each sample's observation is its
    loss summed over its counted targets (`per_sample_loss`) divided by the mean count per sample
    over the whole data, which the targets fix in advance: the population mean of that is the
    dataset loss per counted target, so token outputs ``(B, T, V)`` with padding are weighed by
    tokens, as `evaluate` weighs them, and still get per-sequence standard errors and the control.
    """

    default_batch_size = 128

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, device: str | torch.device | None = None,
                 precision: str = "fp32", rtol: float = 0.02, min_samples: int = 512, seed: int = 0,
                 channels_last: bool = False, **options: Any):
        if not rtol > 0:
            raise LandscapeError(f"rtol must be positive, got {rtol}")
        self.rtol, self.min_samples, self.seed = float(rtol), int(min_samples), int(seed)
        self.per_sample = per_sample_loss(loss)
        self._per_target: float | None = None
        self.control: torch.Tensor | None = None
        self.control_mean = 0.0
        super().__init__(model, data, loss, batch_size, device, precision, channels_last, shuffle=True, seed=seed,
                         **options)

    def _observations(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample observations whose mean over the whole data is the dataset loss (class docstring)."""
        if self._per_target is None:  # counted targets per sample, over all the data: fixed by the targets
            self._per_target = (self.risk.total_weight or 1) / self.n  # (none counted: every loss is 0)
        return self.per_sample(out, target).double().cpu() / self._per_target

    @torch.inference_mode()
    def set_control(self) -> None:
        """Record every sample's loss at the model's current weights as the control variate."""
        if self.per_sample is None:
            return
        with eval_mode(self.model), precision_context(self.precision, self.device):
            self.control = torch.cat([self._observations(self.risk.outputs(b).float(), b.target)
                                      for b in self.batches])
        self.control_mean = float(self.control.mean())

    @torch.inference_mode()
    def __call__(self) -> tuple[float, float, float, int]:
        """Return (mean loss, accuracy, standard error of the loss, samples used)."""
        stats = _RunningMoments()
        correct = 0.0
        n = weight = 0
        est, se = float("nan"), float("nan")
        with eval_mode(self.model), precision_context(self.precision, self.device):
            for b in self.batches:
                out = self.risk.outputs(b).float()
                if self.per_sample is not None:
                    ls = self._observations(out, b.target)
                    cs = self.control[n:n + len(b.target)] if self.control is not None else None
                    stats.add(ls, cs)
                else:  # a user's loss: each batch mean is one observation
                    stats.add(self.loss_fn(out, b.target).double().cpu().reshape(1), None, weight=b.weight)
                n += len(b.target)
                weight += b.weight
                correct += float(correct_count(out, b.target))
                est, se = stats.estimate(self.control_mean, max(0.0, 1.0 - n / self.n))
                if n >= self.min_samples and se <= self.rtol * abs(est):
                    break
        if n == self.n:
            est, se = stats.mean, 0.0  # every sample used: the plain mean is exact
        else:  # float32 losses carry ~1e-7 relative rounding: no estimate is more precise than that
            se = max(se, _FLOAT32_FLOOR * abs(est))
        return est, correct / weight, se, n


_FLOAT32_FLOOR = 1e-6


class _RunningMoments:
    """Sums for a mean, its standard error, and the control-variate regression estimator."""

    def __init__(self):
        self.k = 0          # observations
        self.w = 0.0        # total weight (samples)
        self.sl = self.sl2 = self.sc = self.sc2 = self.slc = 0.0
        self.has_control = True

    def add(self, l: torch.Tensor, c: torch.Tensor | None, weight: int | None = None) -> None:
        """Per-sample losses ``l`` (with controls ``c``), or one batch mean carrying ``weight`` samples."""
        self.k += len(l)
        self.w += len(l) if weight is None else weight
        self.sl += float(l.sum()) * (1 if weight is None else weight)
        self.sl2 += float((l * l).sum())
        if c is None:
            self.has_control = False
        else:
            self.sc += float(c.sum())
            self.sc2 += float((c * c).sum())
            self.slc += float((l * c).sum())

    @property
    def mean(self) -> float:
        return self.sl / self.w

    def estimate(self, control_mean: float, fpc: float) -> tuple[float, float]:
        k = self.k
        if k < 2:
            return self.mean, (float("inf") if fpc > 0 else 0.0)
        if self.w != k:  # batch means of a user loss: plain estimator over the batch means
            means = self.sl / self.w
            var = max(0.0, (self.sl2 - k * means * means) / (k - 1))
            return means, math.sqrt(var / k * fpc)
        ml = self.sl / k
        var_l = max(0.0, (self.sl2 - k * ml * ml) / (k - 1))
        if not self.has_control:
            return ml, math.sqrt(var_l / k * fpc)
        mc = self.sc / k
        var_c = max(0.0, (self.sc2 - k * mc * mc) / (k - 1))
        cov = (self.slc - k * ml * mc) / (k - 1)
        b = cov / var_c if var_c > 0 else 0.0
        resid = max(0.0, var_l - b * cov)
        return ml - b * (mc - control_mean), math.sqrt(resid / k * fpc)


def evaluate(model: nn.Module | EmpiricalRisk, data: DataSpec | None = None, loss: LossSpec = "crossentropy",
             batch_size: int | None = None, device: str | torch.device | None = None, *,
             data_on: str = "auto", target_key: str | None = None) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for non-class targets) of ``model`` over ``data``, or of a risk."""
    if isinstance(model, EmpiricalRisk):
        return model.evaluate()
    return Evaluator(model, data, loss, batch_size, device, data_on=data_on, target_key=target_key)()


BATCH_CANDIDATES = (32, 64, 128, 256, 512, 1024, 2048)
MEASURE_SAMPLES = 4096  # samples the batch-size and layout timings use at most (the largest candidate x 2)


def time_forward(model: nn.Module, inputs: torch.Tensor, batch_size: int, repeat: int = 3) -> float:
    """Best wall time of a bare eager inference pass over ``inputs`` (the floor to compare with)."""
    import time

    batches = list(torch.split(inputs, batch_size))
    best = float("inf")
    with torch.inference_mode(), eval_mode(model):
        for _ in batches[:2]:  # warm-up
            model(_)
        for _ in range(repeat):
            if inputs.is_cuda:
                torch.cuda.synchronize(inputs.device)
            t0 = time.perf_counter()
            for xb in batches:
                model(xb)
            if inputs.is_cuda:
                torch.cuda.synchronize(inputs.device)
            best = min(best, time.perf_counter() - t0)
    return best


def measure_batch_size(model: nn.Module, inputs: torch.Tensor, candidates=BATCH_CANDIDATES,
                       repeat: int = 3, max_samples: int = MEASURE_SAMPLES) -> tuple[int, dict[int, float]]:
    """The fastest evaluation batch size per sample, by timing (the largest is often not the best on CPU).

    The candidates are timed in ``repeat`` rounds, in turns (the order reversed every other round),
    and compared by their median: timing each candidate's passes back to back let a machine whose
    load changed while measuring decide the answer (on the loaded 2-core machine it picked 128 for
    the digits convnet, where 512 and 1024 passes took 0.86x as long, paired).
    """
    sample = inputs[:max_samples]
    sizes = [bs for bs in candidates if bs <= max(len(sample), candidates[0])]
    runs: dict[int, list[float]] = {bs: [] for bs in sizes}
    for r in range(repeat):
        for bs in (sizes if r % 2 == 0 else sizes[::-1]):
            runs[bs].append(time_forward(model, sample, bs, 1))
    times = {bs: float(np.median(t)) for bs, t in runs.items()}
    return min(times, key=times.get), times


def measure_layout(model: nn.Module, inputs: torch.Tensor, batch_size: int, repeat: int = 5) -> str:
    """``channels_last`` when it makes this model's forward pass faster on 4D inputs, else ``contiguous``.

    The two layouts are timed in turns and compared by the median of the paired ratios, so a
    machine that speeds up or slows down while measuring does not decide the answer.
    """
    if inputs.dim() != 4:
        return "contiguous"
    sample = inputs[:max(batch_size, 1024)]
    sample_cl = sample.contiguous(memory_format=torch.channels_last)
    ratios = []
    for _ in range(repeat):
        base = time_forward(model, sample, batch_size, 1)
        with channels_last_model(model):
            fast = time_forward(model, sample_cl, batch_size, 1)
        ratios.append(fast / base)
    return "channels_last" if float(np.median(ratios)) < 0.95 else "contiguous"


@contextlib.contextmanager
def channels_last_model(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """The model's 4D weights in channels-last layout for the block, the original layout after (values untouched)."""
    if not enabled:
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def _cached(kind: str, model: nn.Module, inputs: torch.Tensor, compute: Callable[[], object]):
    """A measured choice remembered per (choice, model, input shape, device) across runs.

    Remembering keeps the same command bit-reproducible: summation order and kernels depend on
    the batch size and layout, and a fresh measurement could pick another one.
    """
    from .jsonfile import write_json_atomic

    key, path, table = _choice_key(kind, model, inputs), *_choices()
    if key not in table:
        table[key] = compute()
        write_json_atomic(path, table)
    return table[key]


def _choice_key(kind: str, model: nn.Module, inputs: torch.Tensor) -> str:
    import json

    spec = getattr(model, "landscape_spec", {"name": type(model).__name__, "args": {}})
    return json.dumps([kind, spec.get("name"), spec.get("args"), list(inputs.shape[1:]), inputs.device.type],
                      sort_keys=True, default=str)


def _choices() -> tuple:
    import json

    from .data import cache_dir

    path = cache_dir() / "measured_choices.json"
    try:
        return path, json.loads(path.read_text())
    except (OSError, ValueError):
        return path, {}


def remembered_choices(model: nn.Module, inputs: torch.Tensor) -> tuple[int | None, str | None]:
    """(batch size, layout) that `cached_batch_size` and `cached_layout` remember for this model, input
    shape and device, or None for what was never measured; measures nothing (cost plans use it)."""
    table = _choices()[1]
    batch = table.get(_choice_key("batch_size_interleaved", model, inputs))
    return (None if batch is None else int(batch)), table.get(_choice_key("layout", model, inputs))


def cached_batch_size(model: nn.Module, inputs: torch.Tensor) -> int:
    """`measure_batch_size`, once per model, input shape and device.

    Cached as ``batch_size_interleaved``: choices made by the earlier back-to-back timing are not
    reused (runs resumed from a file keep the file's batch size).
    """
    return int(_cached("batch_size_interleaved", model, inputs, lambda: measure_batch_size(model, inputs)[0]))


def cached_layout(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> str:
    """`measure_layout`, once per model, input shape and device."""
    return str(_cached("layout", model, inputs, lambda: measure_layout(model, inputs, batch_size)))
