"""3D surface: current mplot3d API, log and zmax transforms, NaN holes."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape.errors import LandscapeError
from landscape.plot.surface3d import surface3d

from plot_cases import bowl, grid, is_png


def axes3d():
    return Figure(figsize=(4, 3.5)).add_subplot(projection="3d")


def test_heights_span_the_values(tmp_path):
    x, y = grid(13, 9)
    z = bowl(x, y)
    surf = surface3d(x, y, z, ax=axes3d())
    assert surf.axes.name == "3d"
    assert surf.axes.get_zlim() == pytest.approx((z.min(), z.max()))
    surf.axes.figure.savefig(tmp_path / "s.png")
    assert is_png(tmp_path / "s.png")


def test_log_draws_log10_and_vmax_flattens_the_top():
    x, y = grid(13, 9)
    z = bowl(x, y)
    assert surface3d(x, y, z, ax=axes3d(), log=True).axes.get_zlim() == pytest.approx(
        (np.log10(z.min()), np.log10(z.max())))
    assert surface3d(x, y, z, ax=axes3d(), vmax=1.0).axes.get_zlim() == pytest.approx((z.min(), 1.0))


def test_nan_hole_renders(tmp_path):
    x, y = grid(13, 9)
    z = bowl(x, y)
    z[2:5, 3:7] = np.nan
    z[0, 0] = np.inf
    finite = np.isfinite(z)
    surf = surface3d(x, y, z, ax=axes3d())
    assert surf.axes.get_zlim() == pytest.approx((z[finite].min(), z[finite].max()))
    surf.axes.figure.savefig(tmp_path / "hole.png")
    assert is_png(tmp_path / "hole.png")


def test_flat_axes_and_nonpositive_log_are_clear_errors():
    x, y = grid(7, 5)
    with pytest.raises(LandscapeError, match="3D axes"):
        surface3d(x, y, bowl(x, y), ax=Figure().add_subplot())
    with pytest.raises(LandscapeError, match="log"):
        surface3d(x, y, bowl(x, y) - 1.0, ax=axes3d(), log=True)
