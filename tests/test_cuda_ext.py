"""The native extension ``landscape_shift_ext`` (cuda_ext/) against the PyTorch reference.

Skipped with the build command when the extension is not installed; GPU tests skip without CUDA;
the nvcc test compiles the .cu file on its own wherever nvcc exists.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess

import pytest
import torch

from landscape.ops import shift, shift_reference

try:
    import landscape_shift_ext as ext
except ImportError as e:  # not installed, or built against another torch
    pytest.skip(f"native shift extension not importable ({e}); build it with "
                f"`pip install --no-build-isolation ./cuda_ext`", allow_module_level=True)
shift_mod = importlib.import_module("landscape.ops.shift")

CU_FILE = os.path.join(os.path.dirname(__file__), os.pardir, "cuda_ext", "shift_cuda.cu")
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SHAPES = [(2, 9, 8, 8), (3, 29, 7, 5), (1, 50, 11, 13), (2, 4, 6, 6), (1, 18, 1, 3), (4, 96, 32, 32)]


def _input(shape, dtype, device="cpu"):
    g = torch.Generator().manual_seed(hash(shape) % 1000)
    return torch.randn(shape, generator=g).to(dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k,d", [(3, 1), (3, 2), (5, 1), (5, 3)])
def test_cpu_forward_and_backward_equal_reference_exactly(dtype, shape, k, d):
    x = _input(shape, dtype)
    assert torch.equal(ext.forward(x, k, d), shift_reference(x, k, d))
    assert torch.equal(ext.backward(x, k, d), shift_reference(x, k, d, reverse=True))


def test_random_small_shapes_equal_reference():
    # Edge geometry: 1-pixel rows/columns, dilation beyond the image, fewer channels than groups.
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n, c, h, w = (int(v) for v in torch.randint(1, 12, (4,), generator=g))
        c = int(torch.randint(1, 60, (1,), generator=g))
        k = (3, 5)[int(torch.randint(0, 2, (1,), generator=g))]
        d = int(torch.randint(1, 6, (1,), generator=g))
        x = torch.randn(n, c, h, w, generator=g)
        assert torch.equal(ext.forward(x, k, d), shift_reference(x, k, d)), (n, c, h, w, k, d)
        assert torch.equal(ext.backward(x, k, d), shift_reference(x, k, d, reverse=True)), (n, c, h, w, k, d)


def test_large_dilation_zeroes_shifted_groups():
    x = torch.randn(1, 9, 3, 3)
    out = ext.forward(x, 3, 5)  # every off-centre group moves out of the 3x3 image
    assert torch.equal(out[:, 4], x[:, 4])
    assert torch.count_nonzero(out[:, :4]) == 0 and torch.count_nonzero(out[:, 5:]) == 0


def test_empty_tensor():
    assert ext.forward(torch.randn(0, 9, 4, 4)).shape == (0, 9, 4, 4)


def test_shift_uses_extension_on_cpu(monkeypatch):
    calls = []
    real = ext.forward

    def spy(*a):
        calls.append(a[1:])
        return real(*a)

    monkeypatch.setattr(ext, "forward", spy)
    shift(torch.randn(1, 9, 4, 4), 5, 2)
    assert calls == [(5, 2)]
    assert shift_mod.backend("cpu") == "extension"
    assert shift_mod.extension_info()["cuda_built"] == ext.cuda_built()


def test_gradcheck_float64_through_extension():
    x = torch.randn(2, 13, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: shift(t, 3, 1), (x,))
    assert torch.autograd.gradcheck(lambda t: shift(t, 5, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: shift(t, 3, 2), (x,))


def test_adjoint_identity():
    for k, d in [(3, 1), (5, 2)]:
        x = torch.randn(3, 41, 9, 10, dtype=torch.float64)
        y = torch.randn_like(x)
        lhs = torch.dot(ext.forward(x, k, d).flatten(), y.flatten())
        rhs = torch.dot(x.flatten(), ext.backward(y, k, d).flatten())
        assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_contiguity_and_dtype_errors_are_clear():
    x = torch.randn(2, 9, 4, 5)
    with pytest.raises(ValueError, match="contiguous"):
        ext.forward(x.transpose(2, 3))
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        ext.forward(x.to(torch.int32))
    with pytest.raises(ValueError, match="kernel_size must be 3 or 5"):
        ext.forward(x, 7, 1)
    with pytest.raises(ValueError, match="dilation"):
        ext.forward(x, 3, 0)
    with pytest.raises(ValueError, match="4-D"):
        ext.forward(x[0])


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
def test_cu_file_compiles_with_nvcc_alone(tmp_path):
    obj = tmp_path / "shift_cuda.o"
    proc = subprocess.run(["nvcc", "-c", os.path.abspath(CU_FILE), "-o", str(obj)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert obj.stat().st_size > 0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


@pytest.mark.gpu
@cuda
def test_gpu_extension_was_built_with_cuda():
    assert ext.cuda_built(), "torch has CUDA but the extension was built CPU-only; rebuild where nvcc is found"
    assert shift_mod.backend("cuda") == "extension"


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(128, 96, 32, 32)])
@pytest.mark.parametrize("k,d", [(3, 1), (5, 2)])
def test_gpu_forward_and_backward_equal_reference_exactly(dtype, shape, k, d):
    if not ext.cuda_built():
        pytest.skip("extension built without CUDA")
    x = _input(shape, dtype, "cuda")
    assert torch.equal(ext.forward(x, k, d), shift_reference(x, k, d))
    assert torch.equal(ext.backward(x, k, d), shift_reference(x, k, d, reverse=True))
    assert torch.equal(ext.forward(x, k, d).cpu(), ext.forward(x.cpu(), k, d))


@pytest.mark.gpu
@cuda
def test_gpu_gradcheck_float64():
    if not ext.cuda_built():
        pytest.skip("extension built without CUDA")
    x = torch.randn(2, 13, 5, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: shift(t, 3, 1), (x,))
