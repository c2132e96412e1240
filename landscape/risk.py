"""The empirical risk ``L(w) = sum_b n_b loss_b(w) / sum_b n_b (+ wd/2 ||w||^2)``: one core for every measure.

Surfaces, Hessian spectra and sharpness all need the same things of a model and its data: the
chosen parameters as one flat vector, the batches, the loss and its gradient, Hessian products,
and weights moved and put back bit for bit. `EmpiricalRisk` holds them once. Each batch's mean
loss counts for ``n_b`` = its counted targets (`losses.count_targets`: samples, or tokens that
are not padding). Every pass runs in eval mode (BN running statistics, so nothing depends on
how the data is batched) and hands the model back in the mode it came in.

Data lives on the device (``data_on="device"``, sliced once) or streams from a `DataLoader`
(``"stream"``, flat memory); ``"auto"`` keeps it resident when it fits `batches.resident_budget`
(a quarter of the free memory on CUDA, 2 GiB on a CPU; tensors already in memory on a CPU run
always stay). Both give the same numbers: bit-identical on a CPU at the same batch size.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Iterator, Sequence, Union

import numpy as np
import torch
from torch import nn

from .attention import double_backward_attention
from .batches import (Batch, ResidentBatches, StreamingBatches, call_model, choose_residency, concat,
                      data_length, plain_loader, slice_batch)
from .data import subset_indices
from .errors import LandscapeError
from .losses import LossSpec, batch_totals, correct_count, get_loss, loss_name, wide_head
from .rng import plain_generator

DEFAULT_BATCH_SIZE = 512
ParamSpec = Union[None, str, Sequence[str]]
PRECISIONS = ("fp32", "tf32", "bf16")


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


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32 exactly; tf32 lets CUDA matmuls use TF32; bf16 autocasts the forward pass."""
    check_precision(precision)
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


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise LandscapeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


def select_parameters(model: nn.Module, params: ParamSpec = None) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters a risk acts on, in model order.

    ``params`` is None (every trainable parameter), a name or module prefix (``"classifier"``,
    ``"features.3"``: one layer or block), or a list of such names/prefixes.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise LandscapeError("the model has no trainable parameters (all have requires_grad=False)")
    if params is None:
        return named
    wanted = [params] if isinstance(params, str) else list(params)
    if not wanted:
        raise LandscapeError("params is an empty list; pass None for all parameters or name a layer")

    def chosen(name: str) -> bool:
        return any(name == w or name.startswith(w.rstrip(".") + ".") for w in wanted)

    picked = [(n, p) for n, p in named if chosen(n)]
    if not picked:
        blocks = sorted({n.rsplit(".", 1)[0] for n, _ in named if "." in n})
        raise LandscapeError(f"no trainable parameter matches {wanted}; use a parameter name or a module "
                             f"prefix such as {', '.join(blocks[:6])}")
    return picked


def describe_parameters(params: ParamSpec) -> str:
    if params is None:
        return "all"
    return params if isinstance(params, str) else ",".join(params)


class EmpiricalRisk:
    """The dataset loss of ``model`` over the selected parameters, with everything measures need of it.

    ``samples`` restricts to a fixed random subset (drawn by ``seed``), ``shuffle`` walks the data
    in one fixed random order (the prefix the adaptive evaluator stops in); neither copies the
    data when streaming. ``dtype`` is what floating inputs are cast to (default: the parameters').
    ``target_key`` names the target of dict batches (`landscape.batches`). Use as a context
    manager around moves of the weights (`offset`, `set_flat`): they are put back on exit.
    """

    def __init__(self, model: nn.Module, data: Any, *, loss: LossSpec = "crossentropy",
                 batch_size: int | None = None, params: ParamSpec = None, weight_decay: float = 0.0,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 data_on: str = "auto", samples: int | None = None, seed: int = 0, shuffle: bool = False,
                 target_key: str | None = None, channels_last: bool = False, num_workers: int | None = None,
                 fold_bn: bool = True):
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise LandscapeError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        if batch_size is not None and batch_size < 1:
            raise LandscapeError(f"batch_size must be a positive number of samples, got {batch_size}")
        self.model = model
        data = plain_loader(data)  # a DataLoader over a sampled subset stands for that subset
        self.device = resolve_device(device, model)
        # A model with nothing trainable (a frozen or BN-folded twin) can still be evaluated.
        frozen = params is None and not any(p.requires_grad for p in model.parameters())
        self.named_params = [] if frozen else select_parameters(model, params)
        self.params = [p for _, p in self.named_params]
        self.param_dtype = next((t.dtype for t in [*self.params, *model.parameters()] if t.is_floating_point()),
                                torch.float32)
        self.sizes = [p.numel() for p in self.params]
        self.num_params = sum(self.sizes)
        self.loss_spec, self.loss_fn = loss, get_loss(loss)
        self.weight_decay = float(weight_decay)
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.subset = subset_indices(data_length(data), samples, seed)
        order = self.subset
        if shuffle:
            perm = torch.randperm(data_length(data) if order is None else len(order), generator=plain_generator(seed))
            order = perm if order is None else order[perm]
        self.data_on = choose_residency(data_on, data, data_length(data) if order is None else len(order), self.device)
        source = StreamingBatches if self.data_on == "stream" else ResidentBatches
        kw = {"num_workers": num_workers} if self.data_on == "stream" else {}
        self.batches = source(data, self.batch_size, self.device, dtype or self.param_dtype, order, target_key,
                              channels_last, **kw)
        self.num_samples = self.batches.num_samples
        self.fold_bn = bool(fold_bn)
        self._product_model: nn.Module | None = None
        self.n_hvps = 0
        self.n_evals = 0
        self._origin: list[torch.Tensor] | None = None
        self.settings = {"loss": loss_name(loss), "batch_size": self.batch_size,
                         "params": describe_parameters(params), "weight_decay": self.weight_decay,
                         "weight_decay_included": self.weight_decay != 0.0, "num_params": self.num_params,
                         "num_samples": self.num_samples, "dtype": str(self.param_dtype).removeprefix("torch.")}

    def __repr__(self) -> str:
        return (f"EmpiricalRisk(num_params={self.num_params}, num_samples={self.num_samples}, "
                f"data_on={self.data_on!r}, params={self.settings['params']!r}, weight_decay={self.weight_decay:g})")

    @property
    def total_weight(self) -> int:
        """Counted targets of the whole data (samples, or tokens that are not padding)."""
        return self.batches.total_weight

    def outputs(self, batch: Batch) -> torch.Tensor:
        return call_model(self.model, batch.inputs)

    def product_model(self, batch: Batch) -> nn.Module:
        """What gradients and Hessian products differentiate: the model, with each convolution (or
        linear layer) followed by an eval-mode BatchNorm computed as one layer whose weight and bias
        are formed from the live tensors (`fusion.fold_batchnorm` with ``live=True``).

        The same function of the same parameters, so the same derivatives up to rounding, but the
        BatchNorm's per-activation products leave the forward pass, the first backward and the second
        backward (digits convnet, paired: forward and first backward 0.60x, second backward 0.63x).
        ``fold_bn=False``, a model torch.fx cannot trace, or one without such pairs: the model itself.
        Built once per risk, in eval mode (call it inside `eval_mode`).
        """
        if self._product_model is None:
            self._product_model = self.model
            if self.fold_bn and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
                from .fusion import fold_batchnorm

                inputs = batch.inputs
                example = inputs[0][:2] if isinstance(inputs, tuple) and len(inputs) == 1 else None
                self._product_model = fold_batchnorm(self.model, example, relu_inplace=False, live=True) or self.model
        return self._product_model

    # ---------------------------------------------------------------- flat <-> per-parameter
    def split(self, v: torch.Tensor) -> list[torch.Tensor]:
        """A flat vector as per-parameter tensors, each in its parameter's dtype."""
        chunks = torch.split(v.to(self.device), self.sizes)
        return [c.view_as(p).to(p.dtype) for c, p in zip(chunks, self.params)]

    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])

    def weights(self) -> torch.Tensor:
        """The selected parameters' current values as one flat float64 vector."""
        return self.flatten([p.detach() for p in self.params])

    # ---------------------------------------------------------------- moving the weights
    def origin_flat(self) -> torch.Tensor:
        """The weights moves start from (taken now if no move is under way)."""
        return self.flatten(self._anchor())

    def _need_params(self) -> None:
        if not self.params:
            select_parameters(self.model)  # raises the error that says why

    def _anchor(self) -> list[torch.Tensor]:
        self._need_params()
        if self._origin is None:
            self._origin = [p.detach().clone() for p in self.params]
        return self._origin

    @torch.no_grad()
    def set_flat(self, w: torch.Tensor) -> None:
        """Write a flat vector (any float dtype) into the live parameters."""
        self._anchor()
        for p, chunk in zip(self.params, torch.split(w.to(self.device), self.sizes)):
            p.copy_(chunk.view_as(p))

    @torch.no_grad()
    def offset(self, delta: torch.Tensor) -> None:
        """Parameters := origin + delta (delta flat, float64)."""
        for p, o, d in zip(self.params, self._anchor(), torch.split(delta.to(self.device), self.sizes)):
            p.copy_((o.to(torch.float64) + d.view_as(o)).to(p.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        """Put the origin back bit for bit (nothing to do before any move)."""
        if self._origin is not None:
            for p, o in zip(self.params, self._origin):
                p.copy_(o)

    def __enter__(self) -> "EmpiricalRisk":
        self._origin = None
        if self.params:
            self._anchor()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
        self._origin = None

    # ---------------------------------------------------------------- groups of samples (m-sharpness)
    def batch_groups(self, m: int | None) -> list[Iterable[Batch]]:
        """Groups of consecutive samples of size ``m`` (the last may be smaller); ``None`` is one
        group holding the whole dataset."""
        if m is None:
            return [self.batches]
        if m <= 0:
            raise LandscapeError(f"m must be a positive number of samples, got {m}")
        if self.batches.streaming:
            raise LandscapeError("groups of m samples need the data on the device; use data_on='device' "
                                 "(--data-on device) or m=None")
        inputs, target = concat(list(self.batches))
        return [[slice_batch(inputs, target, i, i + m)] for i in range(0, len(target), m)]

    def weight_of(self, batches: Iterable[Batch] | None) -> int:
        if batches is None or batches is self.batches:
            return self.total_weight
        return sum(b.weight for b in batches)

    # ---------------------------------------------------------------- values
    @torch.inference_mode()
    def evaluate(self, precision: str = "fp32") -> tuple[float, float]:
        """Mean loss and accuracy (NaN for non-class targets) at the current weights.

        Outputs are taken in float32 (the fused cross-entropy of `losses.batch_totals`), sums in
        float64 on the device: one sync per call, not per batch.
        """
        totals = batch_totals(self.loss_spec)
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        total_correct = torch.zeros((), dtype=torch.float64, device=self.device)
        weight = 0
        with eval_mode(self.model), precision_context(precision, self.device):
            for b in self.batches:
                loss_sum, correct = totals(self.outputs(b).float(), b.target)
                total_loss += loss_sum
                total_correct += correct
                weight += b.weight
        self.n_evals += 1
        return float(total_loss) / weight, float(total_correct) / weight

    def loss(self, batches: Iterable[Batch] | None = None) -> float:
        """Weighted mean loss (plus the weight-decay term) at the current weights."""
        return self._mean(batches, error=False)

    def error(self, batches: Iterable[Batch] | None = None) -> float:
        """Fraction of misclassified targets at the current weights (class-index targets only)."""
        return self._mean(batches, error=True)

    @torch.inference_mode()
    def _mean(self, batches: Iterable[Batch] | None, error: bool) -> float:
        total, n = 0.0, 0
        with eval_mode(self.model):
            for b in self.batches if batches is None else batches:
                out = self.outputs(b)
                if error:
                    correct = correct_count(out, b.target)
                    if torch.isnan(correct):
                        raise LandscapeError("the 0-1 error needs class-index targets and (N, classes) outputs; "
                                             "use metric='loss' for other models")
                    total += b.weight - float(correct)
                else:
                    total += float(self.loss_fn(out, b.target)) * b.weight
                n += b.weight
        self.n_evals += 1
        value = total / n
        if self.weight_decay and not error:
            w = self.weights()
            value += 0.5 * self.weight_decay * float(w @ w)
        return value

    def weighted_loss(self, batch: Batch, total: float) -> torch.Tensor:
        """``batch``'s mean loss times its share ``n_b / total`` of the data, through `product_model` and
        on a float64 loss head (`losses.wide_head`): what gradients and Hessian products differentiate."""
        outputs = call_model(self.product_model(batch), batch.inputs)
        return self.loss_fn(wide_head(outputs), batch.target) * (batch.weight / total)

    def loss_and_grad(self, batches: Iterable[Batch] | None = None) -> tuple[float, torch.Tensor]:
        """Weighted mean loss (with the weight-decay term) and its flat float64 gradient."""
        self._need_params()
        n = self.weight_of(batches)
        total = 0.0
        acc = [torch.zeros_like(p, dtype=torch.float64) for p in self.params]
        with eval_mode(self.model), torch.enable_grad():
            for b in self.batches if batches is None else batches:
                loss = self.weighted_loss(b, n)
                grads = torch.autograd.grad(loss, self.params, allow_unused=True)
                total += float(loss.detach())
                for a, g in zip(acc, grads):
                    if g is not None:
                        a += g.to(torch.float64)
        self.n_evals += 1
        grad = self.flatten(acc)
        if self.weight_decay:
            w = self.weights()
            total += 0.5 * self.weight_decay * float(w @ w)
            grad += self.weight_decay * w
        return total, grad

    # ---------------------------------------------------------------- Hessian products
    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` over the whole dataset (float64 flat vector on the device)."""
        if v.shape != (self.num_params,):
            raise LandscapeError(f"vector of shape {tuple(v.shape)} for a risk over {self.num_params} parameters")
        return self.hmm(v.unsqueeze(0))[0]

    def hmm(self, V: torch.Tensor) -> torch.Tensor:
        """Rows ``H v_i`` for the ``k`` rows of ``V`` (``k x P``, float64 result on the device).

        Per batch, one forward and first backward serve all ``k`` vectors: the second backward
        runs once per vector on the retained graph (the last one frees it), so a block costs
        ``F + k S`` instead of ``k (F + S)``. Not ``is_grads_batched``: its legacy vmap has no
        batching rule for the conv/BN double backward and falls back to a slower loop (measured
        slower than this loop on CPU, even for an MLP). Counts ``k`` products in ``n_hvps``.
        """
        if V.ndim != 2 or V.shape[1] != self.num_params:
            raise LandscapeError(f"block of shape {tuple(V.shape)} for a risk over {self.num_params} parameters")
        self._need_params()
        k = V.shape[0]
        V = V.to(device=self.device, dtype=torch.float64)
        vectors = [self.split(v) for v in V]  # once, not per batch: each is a cast to the parameters' dtype
        out = torch.zeros((k, self.num_params), dtype=torch.float64, device=self.device)
        total = self.total_weight
        with eval_mode(self.model), torch.enable_grad(), double_backward_attention():
            for b in self.batches:
                grads = torch.autograd.grad(self.weighted_loss(b, total), self.params, create_graph=True,
                                            allow_unused=True)
                self.add_products(grads, vectors, out, keep_graph=False)
        if self.weight_decay:
            out += self.weight_decay * V
        self.n_hvps += k
        return out

    def add_products(self, grads: Sequence[torch.Tensor | None], vectors: Sequence[Sequence[torch.Tensor]],
                     out: torch.Tensor, keep_graph: bool) -> None:
        """Add one batch's ``H_b v_i`` into row ``i`` of ``out``: a second backward of its gradient ``grads``
        (taken with ``create_graph``) per vector (``vectors[i]``: `split` of ``v_i``).

        The last vector frees the batch's graph unless ``keep_graph`` (`hessian.RetainedProducts`
        keeps it for the next products).
        """
        # Unused parameters (a head the loss never reaches) have zero gradient and curvature.
        used = [j for j, g in enumerate(grads) if g is not None and g.requires_grad]
        if not used:
            return
        bounds = np.cumsum([0] + self.sizes).tolist()
        for i, vs in enumerate(vectors):
            hv = torch.autograd.grad([grads[j] for j in used], self.params, grad_outputs=[vs[j] for j in used],
                                     allow_unused=True, retain_graph=keep_graph or i < len(vectors) - 1)
            for j, h in enumerate(hv):
                if h is not None:
                    out[i, bounds[j]:bounds[j + 1]] += h.detach().reshape(-1).to(torch.float64)


def as_risk(model: Any, data: Any = None, **options: Any) -> EmpiricalRisk:
    """The risk an estimator works on: ``model`` when it already is one (or a view on one), else built.

    Estimators take ``(risk, ...)`` or, as a convenience, ``(model, data, ...)`` with the risk's
    options (``loss=``, ``batch_size=``, ``params=``, ...) by keyword.
    """
    for candidate in (model, data):
        risk = getattr(candidate, "risk", candidate)
        if isinstance(risk, EmpiricalRisk):
            return risk
    if data is None:
        raise LandscapeError("pass an EmpiricalRisk, or a model and its data")
    return EmpiricalRisk(model, data, **options)
