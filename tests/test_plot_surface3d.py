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


def test_facets_are_painted_far_to_near_along_the_ground():
    """Painter's order of a height field: by distance from the eye measured on the ground plane,
    checked against matplotlib's own projection of each facet's foot (not its mean depth, which
    gets steep walls wrong)."""
    from mpl_toolkits.mplot3d import proj3d

    from landscape.plot import surface3d
    from landscape.plot.canvas import new_figure

    x = y = np.linspace(-1, 1, 15)
    X, Y = np.meshgrid(x, y)
    z = 8 * X ** 2 + 4 * Y ** 2 + 60 * np.maximum(0, X - 0.4) ** 2 * (1 + Y)  # a steep wall in front
    for azim in (-58.0, 30.0, 150.0):
        ax = new_figure((5, 4)).add_subplot(projection="3d")
        surf = surface3d(x, y, z, ax=ax, azim=azim)
        ax.figure.canvas.draw()
        keys = surf._zsortfunc(None)
        centres = surf._faces[..., :2].mean(axis=1)
        _, _, depth = proj3d.proj_transform(centres[:, 0], centres[:, 1], np.full(len(centres), z.min()),
                                         ax.get_proj())
        order = np.argsort(keys)[::-1]  # painted first = farthest
        assert np.all(np.diff(np.asarray(depth)[order]) <= 1e-9 * np.ptp(depth))
