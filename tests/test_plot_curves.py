"""1D curves: the lines carry exactly the data given (percent accuracy, gaps at NaN/inf)."""
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape.errors import LandscapeError
from landscape.plot.curves import compare_curves, plot_curves

from plot_cases import is_pdf, is_png


def axes():
    return Figure(figsize=(4, 3), layout="constrained").add_subplot()


def curve(n=21):
    x = np.linspace(-1, 1, n)
    loss = 0.1 + 2 * x ** 2
    return x, loss, 1 / (1 + loss)


def test_loss_left_accuracy_right_in_percent_with_gaps():
    x, loss, acc = curve()
    loss = loss.copy()
    loss[3], loss[5] = np.nan, np.inf
    loss_ax, acc_ax = plot_curves(x, train_loss=loss, test_loss=loss + 0.2, train_acc=acc, test_acc=acc * 0.9,
                                  ax=axes())
    train, test = loss_ax.lines[:2]
    np.testing.assert_array_equal(train.get_xdata(), x)
    assert np.isnan(train.get_ydata()[3]) and np.isnan(train.get_ydata()[5])  # inf leaves a gap too
    np.testing.assert_allclose(np.delete(train.get_ydata(), [3, 5]), np.delete(loss, [3, 5]))
    assert train.get_linestyle() == "-" and test.get_linestyle() == "--"
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), 100 * acc)
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), 90 * acc)
    assert acc_ax is not loss_ax and acc_ax.get_shared_x_axes().joined(acc_ax, loss_ax)
    assert "accuracy" in acc_ax.get_ylabel() and "loss" in loss_ax.get_ylabel()


def test_percent_accuracy_is_kept():
    x, loss, acc = curve()
    _, acc_ax = plot_curves(x, train_acc=100 * acc, ax=axes())
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), 100 * acc)


def test_log_scale_and_no_twin_without_accuracy():
    x, loss, _ = curve()
    loss_ax, acc_ax = plot_curves(x, train_loss=loss, log=True, vmax=5.0, ax=axes())
    assert loss_ax.get_yscale() == "log" and acc_ax is None


def test_landmarks_mark_the_interpolation_ends():
    x = np.linspace(-0.5, 1.5, 21)
    ax = plot_curves(x, train_loss=1 + x ** 2, ax=axes(), landmarks=[(0.0, "A"), (1.0, "B"), (5.0, "off")]).loss
    assert sorted(t.get_text() for t in ax.texts) == ["A", "B"]


def test_bad_input_is_one_clear_error():
    x, loss, _ = curve()
    with pytest.raises(LandscapeError):
        plot_curves(x, ax=axes())
    with pytest.raises(LandscapeError, match="21 x"):
        plot_curves(x, train_loss=loss[:-1], ax=axes())


def test_compare_curves_from_surfaces_to_files(tmp_path):
    x, loss, _ = curve()
    small = SimpleNamespace(x=x, y=None, arrays={"train_loss": loss, "test_loss": loss + 0.1})
    large = SimpleNamespace(x=x, y=None, arrays={"train_loss": 3 * loss, "test_loss": 3 * loss + 0.1})
    paths = compare_curves([("small", small), ("large", large)], tmp_path / "cmp", formats=("png", "pdf"))
    assert [p.name for p in paths] == ["cmp.png", "cmp.pdf"]
    assert is_png(paths[0]) and is_pdf(paths[1])


def test_compare_curves_on_given_axes():
    x, loss, _ = curve()
    ax = axes()
    small = SimpleNamespace(x=x, y=None, arrays={"train_loss": loss, "test_loss": loss + 0.1})
    out = compare_curves({"small": small, "ref": (x, 2 * loss)}, ax=ax)
    assert out is ax and len(ax.lines) == 3
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    np.testing.assert_allclose(ax.lines[2].get_ydata(), 2 * loss)
    assert ax.get_ylabel() == "loss"


def test_compare_curves_refuses_2d_surfaces():
    x, loss, _ = curve()
    flat = SimpleNamespace(x=x, y=x, arrays={"train_loss": np.zeros((21, 21))})
    with pytest.raises(LandscapeError, match="2D"):
        compare_curves([("a", flat)], ax=axes())
