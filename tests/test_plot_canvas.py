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


@pytest.mark.parametrize("decades", [11.0, 3.0, 0.3])
def test_log_colorbar_always_has_tick_labels(decades):
    """A loss spanning 11 decades (a --ckpt3 plane) once left the colorbar with no labels at all."""
    from landscape.plot import contourf
    from landscape.plot.canvas import new_figure

    x = y = np.linspace(-1, 1, 21)
    X, Y = np.meshgrid(x, y)
    z = 10 ** (decades * (X ** 2 + Y ** 2) / 2 - 8)
    ax = new_figure((5, 4)).add_subplot()
    contourf(x, y, z, ax=ax, log=True, label="loss")
    ax.figure.canvas.draw()
    cax = ax.child_axes[0]
    lo, hi = cax.get_ylim()
    shown = [(t.get_position()[1], t.get_text()) for t in cax.get_yticklabels()
             if t.get_text() and lo * (1 - 1e-9) <= t.get_position()[1] <= hi * (1 + 1e-9)]
    assert len(shown) >= 2, shown
    for value, text in shown:
        assert float(text) == pytest.approx(value, rel=0.01)
