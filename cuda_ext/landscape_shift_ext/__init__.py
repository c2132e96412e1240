"""Native shift kernels for ``landscape.ops.shift`` (built from cuda_ext/; see its README).

torch is imported first so its shared libraries (libc10, libtorch) are loaded before the compiled
module that links against them.
"""
import torch  # noqa: F401  (loads libc10/libtorch for _C)

from ._C import backward, cuda_built, forward

__all__ = ["forward", "backward", "cuda_built"]
