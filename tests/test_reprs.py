"""Result objects print in a line or two: scalars in full, arrays summarised (a DensityResult once
printed thousands of numbers)."""
from __future__ import annotations

import numpy as np
import torch

from landscape.hessian import DensityResult, EigenResult, TraceResult
from landscape.sharpness.keskar import KeskarResult


def test_result_reprs_are_short_and_keep_the_numbers():
    grid = np.linspace(-1.0, 12.5, 1000)
    d = DensityResult(np.ones((10, 80)), np.full((10, 80), 1 / 80), grid, np.exp(-grid ** 2), 0.0123, 800,
                      {f"k{i}": i for i in range(12)}, 41.5)
    text = repr(d)
    assert len(text) < 300 and text.startswith("DensityResult(")
    assert "n_hvps=800" in text and "sigma=0.0123" in text and "grid=array(1000, -1..12.5)" in text
    assert "nodes=array(10x80" in text and "{12 settings}" in text
    e = EigenResult(np.array([3.5, 2.0, 1.0]), np.zeros(3), np.zeros(3), True, 13, {}, 1.0, torch.zeros(3, 5000))
    assert "values=[3.5, 2. , 1. ]" in repr(e) and "vectors" not in repr(e) and len(repr(e)) < 200
    assert repr(TraceResult(12.25, 0.5, 100, {"a": 1})) == "TraceResult(value=12.25, stderr=0.5, n_hvps=100, " \
                                                           "seconds=0, settings={'a': 1})"
    k = KeskarResult(value=0.44, base_loss=0.01, settings={}, n_evals=12, max_loss=0.0144, n_iter=10)
    assert repr(k).startswith("KeskarResult(value=0.44, base_loss=0.01, n_evals=12")
