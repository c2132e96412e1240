"""Loss and accuracy of one weight vector over a dataset.

Sample-weighted means (the last, smaller batch counts for what it holds), eval mode for every
measurement (BN statistics must not move), and the model handed back in the mode it came in.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .data import DataSpec, as_tensors, iter_batches
from .errors import LandscapeError
from .losses import LossSpec, correct_count, float_targets, get_loss

DEFAULT_BATCH_SIZE = 256


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, then restore each one's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in flags:
            m.training = was_training


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if model is not None:
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32 exactly; tf32 lets CUDA matmuls use TF32; bf16 autocasts the forward pass."""
    if precision not in PRECISIONS:
        raise LandscapeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    elif precision == "tf32" and device.type == "cuda":
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    else:
        yield


def per_sample_loss(loss: LossSpec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """Unreduced version of a named loss (for standard errors); None for user callables."""
    if loss == "crossentropy":
        return lambda out, y: F.cross_entropy(out, y, reduction="none")
    if loss == "mse":
        return lambda out, y: ((out - float_targets(out, y)) ** 2).reshape(len(out), -1).mean(dim=1)
    return None


class Evaluator:
    """Evaluates the model's *current* weights on fixed data that lives on the device.

    Built once per surface: inputs are moved and sliced into batches up front, so a grid point
    costs forward passes and nothing else.
    """

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, device: str | torch.device | None = None,
                 precision: str = "fp32"):
        self.model = model
        self.device = resolve_device(device, model)
        self.loss_fn = get_loss(loss)
        self.precision = precision
        if precision not in PRECISIONS:
            raise LandscapeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        x, y = self._order(*as_tensors(data))
        self.n = len(x)
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.batches = [(xb.to(self.device), yb.to(self.device)) for xb, yb in iter_batches(x, y, self.batch_size)]

    def _order(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    @torch.inference_mode()
    def __call__(self) -> tuple[float, float]:
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        total_correct = torch.zeros((), dtype=torch.float64, device=self.device)
        with eval_mode(self.model), precision_context(self.precision, self.device):
            for xb, yb in self.batches:
                out = self.model(xb).float()
                total_loss += self.loss_fn(out, yb).double() * len(xb)
                total_correct += correct_count(out, yb).double()
        return float(total_loss) / self.n, float(total_correct) / self.n


class AdaptiveEvaluator(Evaluator):
    """Loss on a growing prefix of one fixed random permutation, stopped at a relative precision.

    The same order at every grid point keeps surfaces smooth (neighbouring points share their
    samples). It stops once the standard error of the mean loss, with the finite-population
    correction (zero when all samples are used), is below ``rtol`` times the mean.
    """

    def __init__(self, model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, device: str | torch.device | None = None,
                 precision: str = "fp32", rtol: float = 0.02, min_samples: int = 256, seed: int = 0):
        if not rtol > 0:
            raise LandscapeError(f"--rtol must be positive, got {rtol}")
        self.rtol, self.min_samples, self.seed = float(rtol), int(min_samples), int(seed)
        self.per_sample = per_sample_loss(loss)
        super().__init__(model, data, loss, batch_size or 128, device, precision)

    def _order(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        return x[perm], y[perm]

    @torch.inference_mode()
    def __call__(self) -> tuple[float, float, float, int]:
        """Return (mean loss, accuracy, standard error of the loss, samples used)."""
        s = s2 = correct = 0.0
        n = k = 0
        se = float("nan")
        with eval_mode(self.model), precision_context(self.precision, self.device):
            for xb, yb in self.batches:
                out = self.model(xb).float()
                if self.per_sample is not None:
                    ls = self.per_sample(out, yb).double()
                    s += float(ls.sum())
                    s2 += float((ls * ls).sum())
                    k += len(xb)
                else:  # user loss: each batch mean is one observation
                    lb = float(self.loss_fn(out, yb))
                    s += lb * len(xb)
                    s2 += lb * lb
                    k += 1
                n += len(xb)
                correct += float(correct_count(out, yb))
                mean = s / n
                se = self._standard_error(s, s2, n, k)
                if n >= self.min_samples and se <= self.rtol * abs(mean):
                    break
        return s / n, correct / n, se, n

    def _standard_error(self, s: float, s2: float, n: int, k: int) -> float:
        fpc = max(0.0, 1.0 - n / self.n)
        if k < 2:
            return float("inf") if fpc > 0 else 0.0
        if self.per_sample is not None:
            mean = s / n
            var = max(0.0, (s2 - n * mean * mean) / (n - 1))
            return math.sqrt(var / n * fpc)
        means_mean = s / n
        var = max(0.0, (s2 - k * means_mean * means_mean) / (k - 1))
        return math.sqrt(var / k * fpc)


def evaluate(model: nn.Module, data: DataSpec, loss: LossSpec = "crossentropy", batch_size: int | None = None,
             device: str | torch.device | None = None) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for non-class targets) of ``model`` over ``data``."""
    return Evaluator(model, data, loss, batch_size, device)()


BATCH_CANDIDATES = (32, 64, 128, 256, 512, 1024, 2048)


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
                       repeat: int = 2, max_samples: int = 4096) -> tuple[int, dict[int, float]]:
    """The fastest evaluation batch size per sample, by timing (the largest is often not the best on CPU)."""
    sample = inputs[:max_samples]
    times = {bs: time_forward(model, sample, bs, repeat) for bs in candidates if bs <= max(len(sample), candidates[0])}
    return min(times, key=times.get), times


def cached_batch_size(model: nn.Module, inputs: torch.Tensor) -> int:
    """`measure_batch_size` once per (model, input shape, device), remembered across runs.

    Remembering the choice keeps the same command bit-reproducible: summation order depends on
    the batch size, and a fresh measurement could pick another one.
    """
    import json
    import os

    from .data import cache_dir

    spec = getattr(model, "landscape_spec", {"name": type(model).__name__, "args": {}})
    key = json.dumps([spec.get("name"), spec.get("args"), list(inputs.shape[1:]), inputs.device.type], sort_keys=True,
                     default=str)
    path = cache_dir() / "batch_sizes.json"
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    if key not in table:
        table[key] = measure_batch_size(model, inputs)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(table, indent=1))
        os.replace(tmp, path)
    return int(table[key])
