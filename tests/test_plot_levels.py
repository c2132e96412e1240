"""Contour levels: checked against brute-force counts on analytic surfaces."""
import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.plot.levels import contour_levels, format_level

from plot_cases import bowl, grid


def wide_loss():
    x = np.linspace(-1, 1, 61)
    X, Y = np.meshgrid(x, x)
    return 0.01 + 100.0 * (X ** 2 + Y ** 2) ** 2  # 0.01 at the minimum, 400 in the corners


def test_auto_is_log_spaced_and_resolves_the_basin_where_linear_does_not():
    z = wide_loss()
    auto, linear = contour_levels(z), contour_levels(z, method="linear")
    assert auto.scale == "log" and linear.scale == "linear"
    assert auto.values[0] <= z.min() and auto.values[-1] >= z.max()
    assert np.all(np.diff(auto.values) > 0)
    assert np.all(auto.values[1:] / auto.values[:-1] <= 3.0 + 1e-9)  # no gap wider than a factor of 3
    # the bottom 1% of the value range (the basin): many log levels, at most one linear level
    basin = z.min() + 0.01 * np.ptp(z)
    assert np.sum(auto.values < basin) >= 5
    assert np.sum(linear.values < basin) <= 1


def test_narrow_range_gets_even_linear_levels_covering_it():
    x, y = grid()
    z = 1.0 + 0.1 * bowl(x, y) / bowl(x, y).max()  # 1.0 .. 1.1
    lv = contour_levels(z, n=10)
    assert lv.scale == "linear"
    steps = np.diff(lv.values)
    assert np.allclose(steps, steps[0])
    assert lv.values[0] <= z.min() and lv.values[-1] >= z.max()
    assert 5 <= len(lv.values) <= 16


def test_quantile_levels_split_the_grid_into_near_equal_shares():
    z = wide_loss()
    lv = contour_levels(z, n=8, method="quantile")
    counts = np.histogram(z.ravel(), bins=lv.values)[0]
    expected = z.size / (len(lv.values) - 1)
    assert np.all(np.abs(counts - expected) <= 0.15 * expected), counts


def test_vmax_caps_levels_and_says_values_beyond_it_extend():
    z = wide_loss()
    lv = contour_levels(z, vmax=5.0, method="linear")
    assert lv.values[-1] >= 5.0 and lv.values[-2] < 5.0
    assert lv.extend == "max"
    lv_log = contour_levels(z, vmax=5.0)
    assert lv_log.values[-1] >= 5.0 and lv_log.values[-2] < 5.0 and lv_log.extend == "max"


def test_nan_and_inf_are_ignored():
    z = wide_loss()
    holed = z.copy()
    holed[10:20, 5:9] = np.nan
    holed[0, 0] = np.inf
    holed[0, 1] = -np.inf
    reference = z.copy()
    reference[10:20, 5:9] = np.median(z)  # values inside the range do not move the levels
    reference[0, :2] = np.median(z)
    lv, ref = contour_levels(holed), contour_levels(reference)
    np.testing.assert_allclose(lv.values, ref.values)


def test_nothing_computed_yet_and_constant_surfaces_do_not_raise():
    lv = contour_levels(np.full((4, 5), np.nan))
    assert len(lv.values) >= 2
    lv = contour_levels(np.full((4, 5), 2.5))
    assert lv.values[0] < 2.5 < lv.values[-1]


def test_explicit_levels_are_used_as_given():
    lv = contour_levels(wide_loss(), levels=[0.5, 0.1, 1.0, 10.0])
    np.testing.assert_array_equal(lv.values, [0.1, 0.5, 1.0, 10.0])


@pytest.mark.parametrize("kwargs", [dict(method="cubic"), dict(vmax=0.001), dict(n=1), dict(levels=[1.0]),
                                    dict(vmin=3.0, vmax=2.0)])
def test_bad_requests_are_one_clear_error(kwargs):
    with pytest.raises(LandscapeError):
        contour_levels(wide_loss(), **kwargs)


def test_log_levels_need_positive_values():
    with pytest.raises(LandscapeError, match="positive"):
        contour_levels(-wide_loss(), method="log")


def test_format_level():
    assert [format_level(v) for v in (0.0, 0.15, 2.0, 1234.5, 1e-5)] == ["0", "0.15", "2", "1.23e3", "1e-5"]
