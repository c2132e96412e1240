"""Probe streams are reproducible and independent of a model initialised from the same seed."""
from __future__ import annotations

import torch

from landscape.hessian.rng import generator


def test_streams_are_reproducible_and_differ_by_purpose():
    a = torch.randn(100, generator=generator(3, "lanczos"))
    assert torch.equal(a, torch.randn(100, generator=generator(3, "lanczos")))
    assert not torch.equal(a, torch.randn(100, generator=generator(3, "trace")))
    assert not torch.equal(a, torch.randn(100, generator=generator(4, "lanczos")))


def test_seed_zero_noise_is_uncorrelated_with_seed_zero_weights():
    n = 20_000
    weights = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # like an init
    naive = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = torch.randn(n, generator=generator(0, "pac-bayes"), dtype=torch.float64)
    corr = lambda u, v: float(torch.corrcoef(torch.stack([u, v]))[0, 1])  # noqa: E731
    assert abs(corr(weights, naive)) > 0.2      # the pitfall this module exists for
    assert abs(corr(weights, ours)) < 4 / n ** 0.5
