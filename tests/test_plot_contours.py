"""Contours and heatmaps: orientation on a non-square grid, NaN holes, clear errors."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape.errors import LandscapeError
from landscape.plot.contours import contour, contourf, heatmap

from plot_cases import X0, Y0, bowl, grid, is_png


def axes():
    return Figure(figsize=(4, 3), layout="constrained").add_subplot()


def test_heatmap_cells_sit_at_their_grid_points():
    x, y = grid()
    z = bowl(x, y)
    mesh = heatmap(x, y, z, ax=axes())
    values = np.asarray(mesh.get_array()).reshape(len(y), len(x))
    np.testing.assert_array_equal(values, z)
    corners = mesh.get_coordinates()  # (ny + 1, nx + 1, 2) cell corners
    assert corners.shape == (len(y) + 1, len(x) + 1, 2)
    centres = (corners[:-1, :-1] + corners[1:, 1:]) / 2
    j, i = np.unravel_index(np.argmin(values), values.shape)
    # the coldest cell is centred on the grid point nearest the analytic minimum
    assert centres[j, i, 0] == pytest.approx(x[np.argmin(np.abs(x - X0))])
    assert centres[j, i, 1] == pytest.approx(y[np.argmin(np.abs(y - Y0))])


def _innermost_centre(cs):
    for segs in cs.allsegs:
        if segs:
            pts = np.concatenate(segs)
            return pts[:, 0].mean(), pts[:, 1].mean()
    raise AssertionError("no contour lines")


@pytest.mark.parametrize("draw", [contour, contourf])
def test_contours_enclose_the_minimum_where_it_is(draw):
    x, y = grid()
    z = bowl(x, y)
    cs = draw(x, y, z, ax=axes())
    cx, cy = _innermost_centre(cs)
    assert abs(cx - X0) < (x[1] - x[0]) and abs(cy - Y0) < (y[1] - y[0])
    assert cs.axes.get_xlim() == (x.min(), x.max()) and cs.axes.get_ylim() == (y.min(), y.max())


def test_filled_contours_leave_nan_holes_empty(tmp_path):
    x, y = grid()
    z = bowl(x, y)
    z[4:9, 3:10] = np.nan  # a hole in the left part
    z[0, -1] = np.inf      # a diverged point
    ax = axes()
    cs = contourf(x, y, z, ax=ax)
    hole_centre = (x[6], y[6])
    for path in cs.get_paths():
        assert not path.contains_point(hole_centre)
    assert any(path.contains_point((x[20], y[6])) for path in cs.get_paths())
    assert any("points computed" in t.get_text() for t in ax.texts)
    ax.figure.savefig(tmp_path / "f.png")
    assert is_png(tmp_path / "f.png")


def test_heatmap_masks_nan_and_inf():
    x, y = grid()
    z = bowl(x, y)
    z[2, 3], z[5, 7] = np.nan, np.inf
    mesh = heatmap(x, y, z, ax=axes())
    mask = np.ma.getmaskarray(mesh.get_array()).reshape(z.shape)
    assert mask[2, 3] and mask[5, 7] and mask.sum() == 2


def test_log_scale_gives_log_colours():
    from matplotlib.colors import LogNorm

    x, y = grid()
    mesh = heatmap(x, y, bowl(x, y, floor=0.001), ax=axes(), log=True)
    assert isinstance(mesh.norm, LogNorm)


def test_vmax_clips_the_colour_scale():
    x, y = grid()
    z = bowl(x, y)
    mesh = heatmap(x, y, z, ax=axes(), vmax=1.0, method="linear")
    assert mesh.norm.vmax == 1.0
    cs = contourf(x, y, z, ax=axes(), vmax=1.0, method="linear")
    assert cs.levels[-1] == pytest.approx(1.0) and cs.extend == "max"


@pytest.mark.parametrize("draw", [contour, contourf, heatmap])
def test_surface_with_nothing_computed_draws_an_empty_frame(draw, tmp_path):
    x, y = grid(7, 5)
    ax = axes()
    draw(x, y, np.full((5, 7), np.nan), ax=ax)
    assert any("no points computed yet" in t.get_text() for t in ax.texts)
    ax.figure.savefig(tmp_path / "empty.png")
    assert is_png(tmp_path / "empty.png")


def test_transposed_values_are_a_clear_error():
    x, y = grid()
    with pytest.raises(LandscapeError, match="transposed"):
        contour(x, y, bowl(x, y).T, ax=axes())


def test_landmarks_inside_the_grid_are_marked():
    x, y = grid()
    ax = axes()
    contour(x, y, bowl(x, y), ax=ax, labels=False,
            landmarks=[((0.0, 0.0), "A"), ((1.0, 0.0), "B"), ((9.0, 9.0), "far")])
    marked = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines]
    assert marked == [(0.0, 0.0), (1.0, 0.0)]
    assert sorted(t.get_text() for t in ax.texts) == ["A", "B"]


def test_without_ax_a_pyplot_figure_is_made():
    import matplotlib.pyplot as plt

    x, y = grid(7, 5)
    cs = contour(x, y, bowl(x, y))
    assert plt.fignum_exists(cs.axes.figure.number)
    plt.close(cs.axes.figure)
