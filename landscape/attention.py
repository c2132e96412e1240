"""Second derivatives through attention: the math kernel for every double backward.

``F.scaled_dot_product_attention`` (used by ``nn.MultiheadAttention``, ``nn.TransformerEncoder``
and most transformers) dispatches to fused kernels - flash attention on CPU, flash or
memory-efficient attention on CUDA - whose backward has no derivative of its own, so a
Hessian-vector product through them fails ("derivative for
aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"). The math
backend is plain differentiable tensor algebra: same values up to rounding, twice
differentiable. The kernel is chosen when the forward runs, so the whole forward and both
backward passes of a product run inside `double_backward_attention`. The native fast path of
``nn.TransformerEncoder``/``nn.MultiheadAttention`` (inference only, no autograd) is switched off
there as well, so an eval-mode encoder always takes the differentiable path.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def double_backward_attention() -> Iterator[None]:
    """Run attention on the twice-differentiable math kernel (and without the MHA fast path) inside."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mha = getattr(torch.backends, "mha", None)
    before = mha.get_fastpath_enabled() if mha is not None else None
    if mha is not None:
        mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        if mha is not None:
            mha.set_fastpath_enabled(before)
