"""landscape.ops.shift: the reference against an element-by-element loop, autograd, errors, fallback."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import landscape
from landscape.errors import LandscapeError
from landscape.ops import Shift, backend, shift, shift_offsets, shift_reference

# ``landscape.ops.shift`` is the function (GUIDE section 3); the module behind it:
shift_mod = importlib.import_module("landscape.ops.shift")


def brute_force_shift(x: np.ndarray, k: int, d: int, reverse: bool = False) -> np.ndarray:
    """The definition, one element at a time (independent of any slicing logic)."""
    n, c, h, w = x.shape
    out = np.zeros_like(x)
    size = c // (k * k)
    sign = -1 if reverse else 1
    for ch in range(c):
        g = ch // size if size else k * k
        dy = dx = 0
        if g < k * k:
            dy, dx = sign * (g // k - k // 2) * d, sign * (g % k - k // 2) * d
        for i in range(h):
            for j in range(w):
                si, sj = i + dy, j + dx
                if 0 <= si < h and 0 <= sj < w:
                    out[:, ch, i, j] = x[:, ch, si, sj]
    return out


CASES = [(3, 1, 9), (3, 1, 13), (3, 2, 20), (5, 1, 25), (5, 1, 31), (5, 2, 27), (3, 1, 4), (3, 3, 10)]


@pytest.mark.parametrize("k,d,c", CASES)
@pytest.mark.parametrize("reverse", [False, True])
def test_reference_matches_elementwise_definition(k, d, c, reverse):
    x = torch.randn(2, c, 6, 7, dtype=torch.float64)
    want = brute_force_shift(x.numpy(), k, d, reverse)
    assert np.array_equal(shift_reference(x, k, d, reverse=reverse).numpy(), want)


@pytest.mark.parametrize("k,d,c", CASES)
def test_shift_matches_definition_on_active_backend(k, d, c):
    x = torch.randn(3, c, 5, 8)
    assert np.array_equal(shift(x, k, d).numpy(), brute_force_shift(x.numpy(), k, d))


def test_group_layout_follows_paper():
    # 9 groups of 2 channels and 1 leftover; group 4 (the centre) and the leftover stay put.
    offsets = shift_offsets(19, 3, 1)
    assert [o[:2] for o in offsets] == [(2 * g, 2 * g + 2) for g in range(9)]
    assert [o[2:] for o in offsets] == [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    x = torch.randn(1, 19, 4, 4)
    y = shift(x)
    assert torch.equal(y[:, 8:10], x[:, 8:10])
    assert torch.equal(y[:, 18], x[:, 18])
    assert shift_offsets(8, 3) == []  # fewer channels than groups: nothing moves
    assert shift_offsets(50, 5, 2)[0][2:] == (-4, -4)


def test_adjoint_identity():
    torch.manual_seed(0)
    for k, d in [(3, 1), (5, 1), (3, 2)]:
        x = torch.randn(2, 29, 9, 7, dtype=torch.float64)
        y = torch.randn_like(x)
        lhs = (shift(x, k, d) * y).sum()
        rhs = (x * shift_reference(y, k, d, reverse=True)).sum()
        assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_gradcheck_and_gradgradcheck_float64():
    x = torch.randn(2, 11, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: shift(t, 3, 1), (x,))
    assert torch.autograd.gradcheck(lambda t: shift(t, 5, 2), (x,))
    assert torch.autograd.gradgradcheck(lambda t: shift(t, 3, 1), (x,))


def test_backward_is_opposite_shift():
    x = torch.randn(2, 18, 6, 6, requires_grad=True)
    g = torch.randn(2, 18, 6, 6)
    shift(x, 3, 2).backward(g)
    assert torch.equal(x.grad, shift_reference(g, 3, 2, reverse=True))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_low_precision_is_exact(dtype):
    x = torch.randn(2, 12, 5, 5).to(dtype)
    want = brute_force_shift(x.float().numpy(), 3, 1)
    got = shift(x)
    assert got.dtype == dtype
    assert np.array_equal(got.float().numpy(), want)


def test_non_contiguous_input():
    x = torch.randn(2, 5, 5, 18).permute(0, 3, 1, 2)  # (2, 18, 5, 5), channels-last strides
    assert not x.is_contiguous()
    assert torch.equal(shift(x), shift_reference(x.contiguous()))
    assert torch.equal(shift(x), torch.from_numpy(brute_force_shift(x.contiguous().numpy(), 3, 1)))


def test_reference_fallback_when_extension_missing(monkeypatch):
    monkeypatch.setattr(shift_mod, "_ext", None)
    assert backend() == "reference"
    assert shift_mod.extension_info() is None
    x = torch.randn(2, 10, 4, 4, dtype=torch.float64, requires_grad=True)
    assert np.array_equal(shift(x).detach().numpy(), brute_force_shift(x.detach().numpy(), 3, 1))
    assert torch.autograd.gradcheck(lambda t: shift(t), (x,))


def test_integer_tensors_use_reference():
    x = torch.arange(2 * 9 * 3 * 3).reshape(2, 9, 3, 3)
    assert torch.equal(shift(x), torch.from_numpy(brute_force_shift(x.numpy(), 3, 1)))


def test_backend_reports_a_known_backend():
    assert backend() in ("extension", "reference")
    assert backend("cpu") == ("extension" if shift_mod._ext is not None else "reference")


@pytest.mark.parametrize("bad", [dict(kernel_size=4), dict(kernel_size=1), dict(kernel_size=True), dict(dilation=0),
                                 dict(dilation=1.5)])
def test_bad_parameters_are_clear_errors(bad):
    with pytest.raises(LandscapeError, match="kernel_size|dilation"):
        shift(torch.randn(1, 9, 4, 4), **bad)
    with pytest.raises(LandscapeError):
        Shift(**bad)


def test_bad_shape_is_clear_error():
    with pytest.raises(LandscapeError, match=r"\(N, C, H, W\)"):
        shift(torch.randn(9, 4, 4))


def test_module_and_public_api():
    layer = Shift(5, 2)
    assert "kernel_size=5, dilation=2" in repr(layer)
    assert list(layer.parameters()) == []
    x = torch.randn(1, 25, 6, 6)
    assert torch.equal(layer(x), shift_reference(x, 5, 2))
    assert landscape.ops.shift is shift_mod.shift
