"""Random streams for probes and perturbations that are independent of the model's own init.

``torch.Generator().manual_seed(0)`` replays exactly the uniforms that ``torch.manual_seed(0)``
fed a model's initialisation, so seed-0 probes built from them (``randn`` is Box-Muller on the
same stream) are correlated with seed-0 weights: PAC-Bayes or average-case noise would then not
be independent of ``w``. Every stream here is seeded from ``(seed, purpose)`` through numpy's
`SeedSequence`, which decorrelates it from the plain seed and from the other purposes.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for ``purpose`` (e.g. ``"lanczos"``), reproducible from ``seed``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(purpose.encode())]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def plain_generator(seed: int) -> torch.Generator:
    """``torch.Generator().manual_seed(seed)``: the stream of sample subsets and orders.

    Kept apart from `generator` because files record subsets drawn from it (a surface's
    ``train_subset``), which a different stream would silently change.
    """
    return torch.Generator().manual_seed(int(seed))
