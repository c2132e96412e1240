"""Shared figure plumbing: coverage notes, saving, percent accuracy, shape checks."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape.errors import LandscapeError
from landscape.plot.canvas import as_percent, coverage_note, grid_arrays, save_figure

from plot_cases import is_pdf, is_png


def test_coverage_note_tells_missing_from_diverged():
    v = np.array([1.0, np.nan, np.inf, 2.0, np.nan])
    assert coverage_note(v) == "3/5 points computed; 1 not finite (diverged)"
    done = np.array([True, True, True, True, False])  # the first NaN was computed: it diverged
    assert coverage_note(v, done) == "4/5 points computed; 2 not finite (diverged)"
    assert coverage_note(np.ones(4)) == ""
    assert coverage_note(np.full(3, np.nan)) == "no points computed yet"


def test_save_figure_writes_each_format(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "sub" / "line", ("png", "pdf"))
    assert [p.name for p in paths] == ["line.png", "line.pdf"]
    assert is_png(paths[0]) and is_pdf(paths[1])
    with pytest.raises(LandscapeError, match="format"):
        save_figure(fig, tmp_path / "x", ("gif",))


def test_as_percent_scales_fractions_only():
    np.testing.assert_allclose(as_percent([0.5, np.nan, 1.0]), [50.0, np.nan, 100.0])
    np.testing.assert_allclose(as_percent([50.0, 97.0]), [50.0, 97.0])


def test_grid_shape_errors():
    with pytest.raises(LandscapeError, match=r"\(3, 4\)"):
        grid_arrays(np.arange(4), np.arange(3), np.zeros((2, 2)))
    with pytest.raises(LandscapeError, match="at least 2"):
        grid_arrays(np.arange(1), np.arange(3), np.zeros((3, 1)))
