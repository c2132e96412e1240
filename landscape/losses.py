"""Loss functions by name, and the accuracy that goes with them.

Every loss is a callable ``(outputs, targets) -> mean loss`` so that weighted means over batches
of different sizes are exact: ``sum(loss_b * n_b) / sum(n_b)``, where ``n_b`` is
`count_targets` of the batch: its samples, or for token targets ``(B, T)`` its counted tokens
(those not equal to ``IGNORE_INDEX``), since a token loss is a mean over tokens, not sequences.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F

from .errors import LandscapeError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossSpec = Union[str, LossFn]


def float_targets(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets shaped like the outputs: one-hot when they are class indices (Li et al.'s MSE runs)."""
    if targets.dtype in (torch.int64, torch.int32) and outputs.dim() == 2:
        return F.one_hot(targets.long(), outputs.shape[1]).to(outputs.dtype)
    return targets.to(outputs.dtype).reshape(outputs.shape)


IGNORE_INDEX = -100  # torch's and Hugging Face's marker for targets that do not count (padding)


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over counted targets: ``(N, C)`` with ``(N,)``, or tokens ``(B, T, V)`` with ``(B, T)``.

    Targets equal to `IGNORE_INDEX` do not count. A batch where none counts has loss 0 (and
    weight 0 from `count_targets`), not NaN, so it cannot poison a dataset mean.
    """
    if outputs.dim() >= 3 and targets.dim() == outputs.dim() - 1 and not targets.is_floating_point():
        flat = targets.reshape(-1)
        total = F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), flat, ignore_index=IGNORE_INDEX,
                                reduction="sum")
        return total / (flat != IGNORE_INDEX).sum().clamp_min(1)  # no device sync, 0 when none counts
    return F.cross_entropy(outputs, targets, ignore_index=IGNORE_INDEX)


WIDE_HEAD_MAX_ELEMENTS = 2 ** 25  # 256 MiB of float64 outputs per batch: beyond that the copy is not free


def wide_head(outputs: torch.Tensor) -> torch.Tensor:
    """``outputs`` in float64 for the loss, so the loss's derivatives are exact where it saturates.

    At a minimum with near-zero loss the softmax saturates: the gradient and the curvature live in
    ``1 - p``, which float32 keeps only to about 6e-8 absolutely, so a float32 loss head loses
    relative accuracy as ``6e-8 / loss`` (4.6e-5 along the top eigenvector of a digits convnet at
    train loss 2e-4). Casting the outputs first makes the head's ``p (1 - p)`` exact; the network
    stays in its own dtype and the cast's backward hands its gradient back in that dtype. The head
    is a few elementwise operations on ``(N, classes)``, so this costs nothing measurable (paired,
    6 rounds: 0.90x and 1.03x a float32 head's product time); outputs larger than
    `WIDE_HEAD_MAX_ELEMENTS` (a large vocabulary's logits) stay as they are.
    """
    if outputs.dtype in (torch.float32, torch.float16, torch.bfloat16) and outputs.numel() <= WIDE_HEAD_MAX_ELEMENTS:
        return outputs.double()
    return outputs


def count_targets(targets: torch.Tensor) -> int:
    """How many targets of a batch count: the weight of its mean loss in a dataset mean.

    Class or token indices: those not equal to `IGNORE_INDEX` (every token of a ``(B, T)`` batch
    that is not padding). Anything else (soft labels, regression targets): the batch size.
    """
    return int(_weight(targets))


def _weight(targets: torch.Tensor) -> torch.Tensor | int:
    """`count_targets` without a device sync (a tensor for index targets)."""
    if targets.is_floating_point():
        return len(targets) if targets.dim() else 1
    return (targets != IGNORE_INDEX).sum()


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs, float_targets(outputs, targets))


LOSSES: dict[str, LossFn] = {
    "crossentropy": cross_entropy,
    "mse": _mse,
}


def get_loss(loss: LossSpec) -> LossFn:
    """Resolve a loss name or an import path ``pkg.module:fn``, or pass a callable through."""
    if callable(loss):
        return loss
    from .imports import is_import_path, resolve

    if is_import_path(loss):
        fn = resolve(loss, "loss")
        if not callable(fn):
            raise LandscapeError(f"loss {loss!r} is a {type(fn).__name__}, not a callable (outputs, targets) -> mean loss")
        return fn
    try:
        return LOSSES[loss]
    except KeyError:
        raise LandscapeError(
            f"unknown loss {loss!r}; use one of {sorted(LOSSES)}, an import path module:function, or pass a "
            "callable (outputs, targets) -> mean loss"
        ) from None


def loss_name(loss: LossSpec) -> str:
    """A name to record in files: the registry key or the callable's qualified name."""
    if isinstance(loss, str):
        return loss
    return getattr(loss, "__qualname__", type(loss).__name__)


def batch_totals(loss: LossSpec) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``(summed loss, correct count)`` of one batch: what an evaluator adds up per grid point.

    Cross-entropy on class indices takes a fused path: one ``max`` gives both the log-sum-exp
    shift and the prediction. ``F.cross_entropy`` goes through ``log_softmax``, which on a CPU
    costs about 2x more for 10 classes and is, with ``argmax``, a few percent of a small model's
    whole forward pass: overhead paid at every one of a surface's thousands of points.
    """
    loss_fn = get_loss(loss)

    def generic(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return loss_fn(outputs, targets) * _weight(targets), correct_count(outputs, targets)

    if loss != "crossentropy":
        return generic

    def fused(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if outputs.dim() != 2 or targets.dtype not in (torch.int64, torch.int32):
            return generic(outputs, targets)
        top, pred = outputs.max(dim=1, keepdim=True)
        shifted = outputs - top
        counted = targets != IGNORE_INDEX
        picked = shifted.gather(1, targets.long().clamp_min(0)[:, None]).squeeze(1)
        return ((shifted.exp().sum(dim=1).log() - picked) * counted).sum(), (pred.squeeze(1) == targets).sum()

    return fused


def correct_count(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of correct argmax predictions among counted targets; NaN when they are not class indices.

    Classes are the last axis of the outputs: ``(N, C)`` with ``(N,)`` or tokens ``(B, T, V)``
    with ``(B, T)``, where targets equal to `IGNORE_INDEX` neither count nor score.
    """
    if (outputs.dim() < 2 or targets.dim() != outputs.dim() - 1
            or targets.dtype not in (torch.int64, torch.int32, torch.uint8)):
        return torch.tensor(float("nan"), device=outputs.device)
    return (outputs.argmax(dim=-1) == targets).sum()  # an argmax is never IGNORE_INDEX
