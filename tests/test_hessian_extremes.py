"""Per-point extreme eigenvalues for convexity maps, inside compute_surface."""
from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import eigsh

from hessian_cases import HVP_BATCH, case
from landscape import compute_surface
from landscape.hessian import HessianOperator, eigen_extremes
from landscape.params import WeightShifter


def test_extremes_at_the_current_weights_match_the_exact_hessian():
    model, data, _, ev = case("mlp")
    f = eigen_extremes(data, batch_size=HVP_BATCH, tol=1e-8, max_iter=400)
    out = f(model)
    assert set(out) == {"max_eig", "min_eig"}
    assert abs(out["max_eig"] - ev[-1]) <= 1e-6 * abs(ev[-1])
    assert abs(out["min_eig"] - ev[0]) <= 1e-6 * abs(ev[0])
    assert f.n_hvps > 0 and f.n_unconverged == 0


def test_surface_stores_min_and_max_eig_point_by_point():
    model, data, _, _ = case("mlp")
    g = torch.Generator().manual_seed(0)
    direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05 for n, p in model.named_parameters()}
    xs = np.array([-1.0, 0.0, 1.0])
    f = eigen_extremes(data, batch_size=HVP_BATCH, tol=1e-8, max_iter=400)
    surf = compute_surface(model, [direction], data, xs, extra=[f], progress=False)
    assert surf.arrays["max_eig"].shape == (3,) and surf.arrays["min_eig"].shape == (3,)
    # Independent reference: ARPACK (scipy eigsh) on the Hessian at each shifted point.
    with WeightShifter(model, [direction]) as shifter:
        for i, x in enumerate(xs):
            shifter.set([x])
            op = HessianOperator(model, data, batch_size=HVP_BATCH)
            top = eigsh(op, k=1, which="LA", tol=1e-10, return_eigenvectors=False)[0]
            bottom = eigsh(op, k=1, which="SA", tol=1e-10, return_eigenvectors=False)[0]
            assert abs(surf.arrays["max_eig"][i] - top) <= 1e-6 * abs(top)
            assert abs(surf.arrays["min_eig"][i] - bottom) <= 1e-6 * abs(bottom)
    assert np.ptp(surf.arrays["max_eig"]) > 1e-3  # the points really differ


def test_two_dimensional_map_has_the_surface_layout():
    model, data, _, ev = case("mlp")
    g = torch.Generator().manual_seed(1)
    dx, dy = ({n: torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05 for n, p in model.named_parameters()}
              for _ in range(2))
    f = eigen_extremes(data, batch_size=HVP_BATCH, tol=1e-8, max_iter=400)
    surf = compute_surface(model, [dx, dy], data, [-1.0, 0.0, 1.0], [0.0, 1.0], extra=[f], progress=False)
    assert surf.arrays["max_eig"].shape == (2, 3)  # (len(y), len(x))
    assert abs(surf.arrays["max_eig"][0, 1] - ev[-1]) <= 1e-6 * abs(ev[-1])  # y=0, x=0 is the model itself
    assert abs(surf.arrays["min_eig"][0, 1] - ev[0]) <= 1e-6 * abs(ev[0])
