"""Convexity map: |min_eig / max_eig| against an elementwise loop."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape.errors import LandscapeError
from landscape.plot.convexity import convexity_map, convexity_ratio, eigenvalue_curves

from plot_cases import grid


def axes():
    return Figure(figsize=(4, 3), layout="constrained").add_subplot()


def eigs():
    x, y = grid(9, 5)
    X, Y = np.meshgrid(x, y)
    lo, hi = -0.2 * X * Y, 1.0 + X ** 2
    hi[1, 1] = 0.0       # undefined ratio
    lo[2, 2] = np.nan    # not computed
    return x, y, lo, hi


def test_ratio_matches_a_loop():
    _, _, lo, hi = eigs()
    ratio = convexity_ratio(lo, hi)
    for j in range(lo.shape[0]):
        for i in range(lo.shape[1]):
            if hi[j, i] == 0 or np.isnan(lo[j, i]):
                assert np.isnan(ratio[j, i])
            else:
                assert ratio[j, i] == pytest.approx(abs(lo[j, i] / hi[j, i]))


def test_2d_map_and_1d_curve():
    x, y, lo, hi = eigs()
    mesh = convexity_map(x, y, lo, hi, ax=axes())
    shown = np.ma.filled(np.ma.asarray(mesh.get_array(), dtype=float).reshape(lo.shape), np.nan)
    np.testing.assert_allclose(shown, convexity_ratio(lo, hi))
    assert mesh.norm.vmin == 0.0
    line = convexity_map(x, None, lo[0], hi[0], ax=axes())
    np.testing.assert_allclose(line.get_ydata(), convexity_ratio(lo[0], hi[0]))


def test_1d_eigenvalue_curves_on_two_axes():
    x, _, lo, hi = eigs()
    max_ax, min_ax = eigenvalue_curves(x, lo[0], hi[0], ax=axes())
    np.testing.assert_allclose(max_ax.lines[0].get_ydata(), hi[0])
    np.testing.assert_allclose(min_ax.lines[0].get_ydata(), lo[0])
    assert "largest" in max_ax.get_ylabel() and "smallest" in min_ax.get_ylabel()


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(LandscapeError, match="shape"):
        convexity_ratio(np.zeros(3), np.ones(4))
