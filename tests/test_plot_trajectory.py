"""Trajectory over contours: the path is drawn where its coordinates say, axes name the PCs."""
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from landscape.errors import LandscapeError
from landscape.plot.trajectory import plot_trajectory

from plot_cases import bowl, grid


def axes():
    return Figure(figsize=(4, 3), layout="constrained").add_subplot()


def test_path_over_contours_with_explained_variance():
    x, y = grid()
    px, py = np.linspace(-0.8, 1.2, 9), np.linspace(0.6, -0.2, 9)  # starts outside the grid's y range
    ax = axes()
    line = plot_trajectory(px, py, x=x, y=y, values=bowl(x, y), explained_variance=[0.912, 0.051], ax=ax,
                           point_labels=list(range(9)), label_every=4)
    np.testing.assert_array_equal(line.get_xdata(), px)
    np.testing.assert_array_equal(line.get_ydata(), py)
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    assert "91.2%" in ax.get_xlabel() and "5.1%" in ax.get_ylabel()
    assert ax.get_ylim()[1] >= 0.6  # the whole path is in view
    assert [t.get_text() for t in ax.texts if t.get_text() in {"0", "4", "8"}] == ["0", "4", "8"]


def test_percent_variance_and_no_contours():
    ax = axes()
    plot_trajectory([0, 1, 2], [0, 1, 0], explained_variance=[80.0, 15.0], ax=ax)
    assert "80.0%" in ax.get_xlabel() and "15.0%" in ax.get_ylabel()


def test_bad_paths_are_clear_errors():
    with pytest.raises(LandscapeError):
        plot_trajectory([0, 1], [0], ax=axes())
    with pytest.raises(LandscapeError, match="grid"):
        plot_trajectory([0, 1], [0, 1], values=np.zeros((3, 3)), ax=axes())
