"""render() and ``landscape render`` on surface files written by hand and by landscape.surface."""

import numpy as np
import pytest

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.plot import KINDS, render
from landscape.surface import load_surface

from plot_cases import accuracy, bowl, grid, is_pdf, is_png, write_surface

ATTRS = {"format": "landscape-surface", "model": "convnet", "dataset": "digits", "mode": "random",
         "checkpoint": "runs/bs32/model.pt", "norm": "filter", "meta_batch_size": 32}


@pytest.fixture(scope="module")
def surf2d(tmp_path_factory):
    """A small non-square 2D surface with a NaN hole and Hessian extremes."""
    x, y = grid(13, 7)
    loss = bowl(x, y)
    loss[2:4, 3:5] = np.nan
    X, Y = np.meshgrid(x, y)
    arrays = {"train_loss": loss, "test_loss": loss + 0.1, "train_acc": accuracy(loss),
              "test_acc": accuracy(loss + 0.1), "min_eig": -0.1 * np.abs(X * Y), "max_eig": 2.0 + X ** 2}
    return write_surface(tmp_path_factory.mktemp("s") / "random_2d.h5", x, y, arrays, ATTRS)


@pytest.fixture(scope="module")
def surf1d(tmp_path_factory):
    x = np.linspace(-0.5, 1.5, 21)
    loss = 0.1 + (x * (x - 1)) ** 2
    loss[7] = np.nan
    return write_surface(tmp_path_factory.mktemp("s") / "line_1d.h5", x, None,
                         {"train_loss": loss, "test_loss": loss + 0.2, "train_acc": accuracy(loss),
                          "test_acc": accuracy(loss + 0.2)},
                         {**ATTRS, "mode": "line", "ckpt2": "runs/bs4096/model.pt"})


def test_auto_2d_draws_each_view_of_each_array(surf2d, tmp_path):
    paths = render(surf2d, tmp_path)
    names = sorted(p.name for p in paths)
    expected = sorted([f"random_2d_{a}_{k}.png" for a in ("train_loss", "test_loss")
                       for k in ("contour", "contourf", "heatmap", "surface3d")] +
                      [f"random_2d_{a}_{k}.png" for a in ("train_acc", "test_acc") for k in ("contour", "contourf")] +
                      ["random_2d_convexity.png"])
    assert names == expected
    assert all(is_png(p) for p in paths)


def test_all_kinds_pdf_log_vmax_and_vtp(surf2d, tmp_path):
    paths = render(load_surface(surf2d), tmp_path, kinds="all", formats=("pdf",), log=True, vmax=2.0,
                   names=["train_loss"], trajectory=([1.8, 1.5, 1.2], [0.4, 0.0, -0.2]), explained_variance=[0.9, 0.1])
    names = {p.name for p in paths}
    assert {"random_2d_train_loss_contour_log.pdf", "random_2d_train_loss_surface3d_log.pdf",
            "random_2d_train_loss_zmax=2_log.vtp", "random_2d_convexity.pdf", "random_2d_trajectory_log.pdf"} <= names
    assert all(is_pdf(p) for p in paths if p.suffix == ".pdf")


def test_1d_draws_loss_and_accuracy(surf1d, tmp_path):
    paths = render(surf1d, tmp_path, formats=("png", "pdf"))
    assert [p.name for p in paths] == ["line_1d_loss_acc.png", "line_1d_loss_acc.pdf"]
    assert is_png(paths[0]) and is_pdf(paths[1])


def test_1d_with_eigenvalues_adds_the_ratio_and_the_eigenvalue_curves(tmp_path):
    x = np.linspace(-1, 1, 11)
    path = write_surface(tmp_path / "random_1d.h5", x, None,
                         {"train_loss": 0.1 + x ** 2, "train_acc": accuracy(0.1 + x ** 2), "max_eig": 2.0 + x,
                          "min_eig": -0.1 * x ** 2}, ATTRS)
    paths = render(path, tmp_path)
    assert [p.name for p in paths] == ["random_1d_loss_acc.png", "random_1d_convexity.png",
                                       "random_1d_eigenvalues.png"]
    assert all(is_png(p) for p in paths)


def test_a_surface_just_started_renders(tmp_path):
    x, y = grid(7, 5)
    loss = np.full((5, 7), np.nan)
    loss[0, :3] = [1.0, 2.0, 3.0]
    path = write_surface(tmp_path / "partial.h5", x, y, {"train_loss": loss, "train_acc": np.full((5, 7), np.nan)})
    paths = render(path, tmp_path / "out", kinds="all")
    assert {p.name for p in paths} == {f"partial_train_loss_{k}.png" for k in ("contour", "contourf", "heatmap",
                                                                              "surface3d")} | {"partial_train_loss.vtp"}
    empty = write_surface(tmp_path / "empty.h5", x, y, {"train_loss": np.full((5, 7), np.nan)})
    assert len(render(empty, tmp_path / "out")) == 4


def test_surface_written_by_landscape_surface_renders(tmp_path):
    """The file compute_surface writes (via its store) is what render reads."""
    from landscape.surface import SurfaceStore

    x, y = grid(7, 5)
    z = bowl(x, y)
    store = SurfaceStore(tmp_path / "store.h5", x, y, fingerprint={"dataset": "digits"}, attrs={})
    for p in range(z.size - 5):  # leave the last points missing
        j, i = divmod(p, len(x))
        store.record(p, {"train_loss": z[j, i], "train_acc": 0.5})
    store.close()
    surface = load_surface(tmp_path / "store.h5")
    np.testing.assert_array_equal(surface["train_loss"].ravel()[:-5], z.ravel()[:-5])
    mesh_paths = render(surface, tmp_path, kinds=["heatmap"], names=["train_loss"])
    assert len(mesh_paths) == 1 and is_png(mesh_paths[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(kinds=["sparkles"]), "unknown figure kind"),
    (dict(formats=("bmp",)), "unsupported figure format"),
    (dict(names=["val_loss"]), "has no 'val_loss'"),
    (dict(vmax=1e-6), "train_loss: vmax"),
])
def test_bad_requests_are_one_clear_error(surf2d, tmp_path, kwargs, match):
    with pytest.raises(LandscapeError, match=match):
        render(surf2d, tmp_path, **kwargs)


def test_2d_kinds_on_a_1d_surface_are_refused(surf1d, tmp_path):
    with pytest.raises(LandscapeError, match="needs a 2D surface"):
        render(surf1d, tmp_path, kinds=["contour"])


def test_cli_render(surf1d, tmp_path, capsys):
    assert main(["render", str(surf1d), "--out", str(tmp_path), "--format", "png", "--log"]) == 0
    out = capsys.readouterr().out
    assert "points computed" in out and "line_1d_loss_acc_log.png" in out
    assert is_png(tmp_path / "line_1d_loss_acc_log.png")


@pytest.mark.parametrize("junk", [False, True])
def test_cli_bad_file_is_one_line(tmp_path, capsys, junk):
    path = tmp_path / "surface.h5"
    if junk:
        path.write_text("not an h5 file")
    assert main(["render", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("landscape render: error:")


@pytest.mark.parametrize("computed", [True, False])
def test_cli_refuses_a_surface_without_a_finite_value(tmp_path, capsys, computed):
    import h5py

    x, y = grid(7, 5)
    nothing = write_surface(tmp_path / "nan.h5", x, y, {"train_loss": np.full((5, 7), np.nan),
                                                        "train_acc": np.full((5, 7), np.nan)})
    with h5py.File(nothing, "a") as f:  # computed and NaN everywhere (a diverged model), or not computed yet
        f["done"][...] = computed
    assert main(["render", str(nothing), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("landscape render: error:")
    assert ("no finite values" in err and "--names" in err) if computed else "none of the surface's 35 points" in err
    assert not (tmp_path / "figs").exists()
    partly = np.full((5, 7), np.nan)
    partly[0, 0] = 1.0  # one finite value: drawn, as before
    part = write_surface(tmp_path / "part.h5", x, y, {"train_loss": partly})
    assert main(["render", str(part), "--out", str(tmp_path / "figs")]) == 0
    assert len(list((tmp_path / "figs").glob("part_train_loss_*.png"))) == 4


def test_cli_plot_refuses_to_draw_a_surface_without_a_finite_value(trained_ckpt, tmp_path, capsys, monkeypatch):
    import landscape.workflow

    def all_nan(job):  # what a model giving NaN at every point computes (NaN weights are refused earlier)
        x = np.asarray(job.x)
        path = write_surface(job.surface_path(), x, None, {"train_loss": np.full(len(x), np.nan),
                                                           "train_acc": np.full(len(x), np.nan)})
        surface = load_surface(path)
        surface.done[...] = True
        return surface

    monkeypatch.setattr(landscape.workflow, "run_surface_job", all_nan)
    out = tmp_path / "out"
    assert main(["plot", "--ckpt", str(trained_ckpt), "--x", "-1:1:3", "--samples", "16", "--splits", "train",
                 "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "landscape plot: error: the surface has no finite values" in err
    assert list(out.glob("*.h5")) and not list(out.glob("*.png"))  # the numbers are kept, no blank figure


def test_cli_kind_choices_match_the_library():
    from landscape.cli.render import KIND_CHOICES

    assert KIND_CHOICES == ["auto", "all", *KINDS]
