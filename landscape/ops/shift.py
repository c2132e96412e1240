"""The shift operation of Wu et al. 2017: a zero-FLOP, zero-parameter stand-in for a spatial conv.

Channels are split into ``k*k`` groups of ``C // (k*k)`` channels; group ``g`` moves by
``dy = (g // k - k // 2) * dilation``, ``dx = (g % k - k // 2) * dilation``, i.e.
``out[n, c, h, w] = x[n, c, h + dy, w + dx]`` with zeros where that falls outside the image, and
the ``C % (k*k)`` leftover channels (all of them when ``C < k*k``) pass through unshifted.

The op is linear, and its adjoint (the gradient) is the opposite shift. `shift` runs the native
kernels of ``cuda_ext/`` (``landscape_shift_ext``) when they are installed and cover the tensor's
device and dtype, and otherwise `shift_reference`, a pure-PyTorch version that gives bit-identical
results, so the package works (more slowly) without a compiler.
"""
from __future__ import annotations

import importlib
import numbers
from types import ModuleType

import torch
from torch import nn

from ..errors import LandscapeError

__all__ = ["shift", "shift_reference", "Shift", "backend", "extension_info", "shift_offsets"]

KERNEL_SIZES = (3, 5)
_EXT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _load_extension() -> ModuleType | None:
    try:
        return importlib.import_module("landscape_shift_ext")
    except ImportError:
        return None


_ext: ModuleType | None = _load_extension()


def shift_offsets(channels: int, kernel_size: int = 3, dilation: int = 1) -> list[tuple[int, int, int, int]]:
    """``(first_channel, stop_channel, dy, dx)`` for each shifted group, in channel order.

    Channels from the last ``stop_channel`` on are the unshifted leftovers.
    """
    _check_params(kernel_size, dilation)
    k, dilation = int(kernel_size), int(dilation)
    size = channels // (k * k)
    if size == 0:
        return []
    return [(g * size, (g + 1) * size, (g // k - k // 2) * dilation, (g % k - k // 2) * dilation)
            for g in range(k * k)]


def shift_reference(x: torch.Tensor, kernel_size: int = 3, dilation: int = 1, reverse: bool = False) -> torch.Tensor:
    """Pure-PyTorch shift (``reverse=True``: the adjoint, the opposite shift), any device and dtype.

    One slice copy per group into a zero tensor: exact, so the native kernels are tested against it.
    """
    _check_input(x, kernel_size, dilation)
    n, c, h, w = x.shape
    out = torch.zeros_like(x, memory_format=torch.contiguous_format)
    groups = shift_offsets(c, kernel_size, dilation)
    stop = groups[-1][1] if groups else 0
    sign = -1 if reverse else 1
    for c0, c1, dy, dx in groups:
        dy, dx = sign * dy, sign * dx
        # out[h, w] = x[h + dy, w + dx] for the rows/cols where both exist
        ho0, ho1 = max(0, -dy), min(h, h - dy)
        wo0, wo1 = max(0, -dx), min(w, w - dx)
        if ho1 > ho0 and wo1 > wo0:
            out[:, c0:c1, ho0:ho1, wo0:wo1] = x[:, c0:c1, ho0 + dy:ho1 + dy, wo0 + dx:wo1 + dx]
    if stop < c:
        out[:, stop:] = x[:, stop:]
    return out


def _uses_extension(x: torch.Tensor) -> bool:
    if _ext is None or x.dtype not in _EXT_DTYPES:
        return False
    if x.device.type == "cpu":
        return True
    return x.device.type == "cuda" and bool(_ext.cuda_built())


def _raw_shift(x: torch.Tensor, kernel_size: int, dilation: int, reverse: bool) -> torch.Tensor:
    if _uses_extension(x):
        x = x.contiguous()
        return (_ext.backward if reverse else _ext.forward)(x, kernel_size, dilation)
    return shift_reference(x, kernel_size, dilation, reverse=reverse)


class _ShiftFunction(torch.autograd.Function):
    """Shift with the opposite shift as its backward (itself differentiable: double backward works)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel_size: int, dilation: int, reverse: bool) -> torch.Tensor:
        ctx.params = (kernel_size, dilation, reverse)
        return _raw_shift(x, kernel_size, dilation, reverse)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        kernel_size, dilation, reverse = ctx.params
        return _ShiftFunction.apply(grad, kernel_size, dilation, not reverse), None, None, None


def shift(x: torch.Tensor, kernel_size: int = 3, dilation: int = 1) -> torch.Tensor:
    """Shift each channel group of an ``(N, C, H, W)`` tensor by its offset, zero fill; differentiable."""
    _check_input(x, kernel_size, dilation)
    return _ShiftFunction.apply(x, int(kernel_size), int(dilation), False)


class Shift(nn.Module):
    """`shift` as a layer (no parameters), for use between 1x1 convolutions."""

    def __init__(self, kernel_size: int = 3, dilation: int = 1):
        super().__init__()
        _check_params(kernel_size, dilation)
        self.kernel_size = int(kernel_size)
        self.dilation = int(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shift(x, self.kernel_size, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}"


def backend(device: str | torch.device = "cpu") -> str:
    """``"extension"`` if `shift` runs the native kernel on ``device`` (float types), else ``"reference"``."""
    device = torch.device(device)
    if _ext is None:
        return "reference"
    if device.type == "cpu" or (device.type == "cuda" and bool(_ext.cuda_built())):
        return "extension"
    return "reference"


def extension_info() -> dict | None:
    """Where the native extension was loaded from and what it was built with; None when absent."""
    if _ext is None:
        return None
    compiled = getattr(_ext, "_C", _ext)
    return {"module": _ext.__name__, "path": getattr(compiled, "__file__", None), "cuda_built": bool(_ext.cuda_built())}


def _check_params(kernel_size: int, dilation: int) -> None:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral) \
            or kernel_size not in KERNEL_SIZES:
        raise LandscapeError(f"shift kernel_size must be 3 or 5, got {kernel_size!r}")
    if isinstance(dilation, bool) or not isinstance(dilation, numbers.Integral) or dilation < 1:
        raise LandscapeError(f"shift dilation must be a positive integer, got {dilation!r}")


def _check_input(x: torch.Tensor, kernel_size: int, dilation: int) -> None:
    _check_params(kernel_size, dilation)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise LandscapeError(f"shift expects an (N, C, H, W) tensor, got {shape}")
