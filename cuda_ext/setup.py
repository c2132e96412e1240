"""Build ``landscape_shift_ext``, the native shift kernels used by ``landscape.ops.shift``.

    pip install --no-build-isolation ./cuda_ext

``--no-build-isolation`` builds against the torch already installed (an isolated build would
download the newest torch, several GB of CUDA wheels, and an ABI that does not match). The CUDA
kernel is compiled when that torch has CUDA and nvcc is found (CUDA_HOME); otherwise only the
C++ CPU kernel is built. ``LANDSCAPE_SHIFT_CPU_ONLY=1`` forces a CPU-only build. This script
needs torch only, not the landscape package.
"""
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - depends on how pip was invoked
    sys.exit("landscape_shift_ext needs torch at build time: install torch first, then run "
             "`pip install --no-build-isolation ./cuda_ext`")

CPU_ONLY = os.environ.get("LANDSCAPE_SHIFT_CPU_ONLY", "") not in ("", "0")
WITH_CUDA = not CPU_ONLY and torch.version.cuda is not None and CUDA_HOME is not None

cxx_flags = ["-O3", "-std=c++17"]
if WITH_CUDA:
    ext = CUDAExtension(
        "landscape_shift_ext._C",
        sources=["shift.cpp", "shift_cuda.cu"],
        define_macros=[("WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
    )
else:
    ext = CppExtension("landscape_shift_ext._C", sources=["shift.cpp"], extra_compile_args={"cxx": cxx_flags})

print(f"landscape_shift_ext: building the {'CPU + CUDA' if WITH_CUDA else 'CPU-only'} extension "
      f"against torch {torch.__version__} (CUDA {torch.version.cuda}, CUDA_HOME {CUDA_HOME})", file=sys.stderr)

setup(
    name="landscape-shift-ext",
    version="0.1.0",
    description="Native shift kernels (Wu et al. 2017) for the landscape toolkit",
    packages=["landscape_shift_ext"],
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension},
    # Deliberately no install_requires: naming torch here could make pip fetch a different build.
    python_requires=">=3.10",
    zip_safe=False,
)
