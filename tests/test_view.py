"""landscape.view: the embedded numbers are the file's, colour scales are shared, and the page renders
in a real headless Chromium without JavaScript errors (skipped, with the reason, without Chromium)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from landscape.cli import main
from landscape.view import decode_array, figure_specs, log_ticks, view_html
from landscape.view_report import html_table, report_html

from browser import chromium, open_page
from plot_cases import accuracy, bowl, grid, is_png, write_surface

PATH_X, PATH_Y = [1.8, 1.5, 1.2], [0.4, 0.1, -0.2]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2D surface with a training path and a missing point, a sharper 2D one, and a 1D one."""
    d = tmp_path_factory.mktemp("view")
    x, y = grid()
    loss = bowl(x, y)
    loss[3, 4] = np.nan  # not computed yet
    two = write_surface(d / "small_batch.h5", x, y,
                        {"train_loss": loss, "test_loss": 1.1 * loss, "train_acc": accuracy(loss),
                         "test_acc": accuracy(1.1 * loss)},
                        {"model": "convnet", "dataset": "digits", "trajectory_x": json.dumps(PATH_X),
                         "trajectory_y": json.dumps(PATH_Y), "epochs": "[1, 2, 3]"})
    sharp = 1e-4 * np.exp(12 * (bowl(x, y) - 0.05) / 7)  # spans about 5 decades
    other = write_surface(d / "large_batch.h5", x, y,
                          {"train_loss": sharp, "test_loss": 2 * sharp, "train_acc": accuracy(sharp),
                           "test_acc": accuracy(2 * sharp)}, {"model": "convnet"})
    x1 = np.linspace(-1, 1, 41)
    one = write_surface(d / "line_1d.h5", x1, None,
                        {"train_loss": x1 ** 2 + 0.01, "test_loss": x1 ** 2 + 0.05, "train_acc": 1 / (1 + x1 ** 2),
                         "test_acc": 0.9 / (1 + x1 ** 2)})
    return {"2d": two, "2d_sharp": other, "1d": one, "dir": d}


def _traces(spec, q, log, kind):
    return [t for t in spec["data"] if t.get("meta", {}).get("q") == q and t.get("meta", {}).get("log") == log
            and t["type"] == kind]


def _h5(path):
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def test_page_holds_the_files_numbers(files, tmp_path):
    out = view_html([files["2d"], files["2d_sharp"]], tmp_path / "v.html")
    text = out.read_text()
    assert "<script src=" not in text and "cdn" not in text.lower().split("plotly.js v")[0]  # nothing fetched
    specs = figure_specs(text)
    assert len(specs) == 2
    for spec, path in zip(specs, (files["2d"], files["2d_sharp"])):
        h5 = _h5(path)
        for q in ("train_loss", "test_loss"):
            for kind in ("surface", "contour"):
                (t,) = _traces(spec, q, False, kind)
                np.testing.assert_allclose(decode_array(t["x"]), h5["xcoordinates"])
                np.testing.assert_allclose(decode_array(t["y"]), h5["ycoordinates"])
                np.testing.assert_array_equal(decode_array(t["z"]), h5[q])  # NaN where not computed
                (tl,) = _traces(spec, q, True, kind)
                np.testing.assert_allclose(decode_array(tl["z"]), np.log10(h5[q]))
            custom = decode_array(t["customdata"])  # hover: loss and accuracy (percent) of that split
            split = q.split("_")[0]
            np.testing.assert_array_equal(custom[..., 0], h5[f"{split}_loss"])
            np.testing.assert_allclose(custom[..., 1], 100 * h5[f"{split}_acc"])
            assert "loss" in t["hovertemplate"] and "accuracy" in t["hovertemplate"]
        (acc,) = _traces(spec, "test_acc", None, "contour")
        np.testing.assert_allclose(decode_array(acc["z"]), 100 * h5["test_acc"])
    # one colour scale: the contour levels and limits of each quantity are the same in both files
    for q, log in (("train_loss", False), ("train_loss", True), ("test_acc", None)):
        a, b = (_traces(s, q, log, "contour")[0] for s in specs)
        assert (a["zmin"], a["zmax"], a["contours"]) == (b["zmin"], b["zmax"], b["contours"])
        both = np.concatenate([decode_array(_traces(s, q, log, "contour")[0]["z"]).ravel() for s in specs])
        assert a["zmin"] == pytest.approx(np.nanmin(both)) and a["zmax"] == pytest.approx(np.nanmax(both))
    path = [t for t in specs[0]["data"] if t["type"] == "scatter"]
    assert len(path) == 1 and path[0]["text"] == ["1", "2", "3"]
    np.testing.assert_array_equal(decode_array(path[0]["x"]), PATH_X)
    np.testing.assert_array_equal(decode_array(path[0]["y"]), PATH_Y)
    assert not [t for t in specs[1]["data"] if t["type"] == "scatter"]
    assert "convnet" in text and "digits" in text  # the attribute panel


def test_1d_page_holds_curves(files, tmp_path):
    (spec,) = figure_specs(view_html(files["1d"], tmp_path / "one.html").read_text())
    h5 = _h5(files["1d"])
    by_name = {t["name"]: t for t in spec["data"]}
    np.testing.assert_allclose(decode_array(by_name["train loss"]["y"]), h5["train_loss"])
    np.testing.assert_allclose(decode_array(by_name["test accuracy (%)"]["y"]), 100 * h5["test_acc"])
    np.testing.assert_allclose(decode_array(by_name["train loss"]["x"]), h5["xcoordinates"])


@pytest.mark.parametrize("lo,hi", [(-9.0, 2.0), (-1.3, -1.1), (0.2, 1.9), (-30.0, 5.0)])
def test_log_colour_bar_always_has_labels(lo, hi):
    vals, text = log_ticks(lo, hi)
    assert 2 <= len(vals) <= 10 and len(text) == len(vals)
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in vals)
    for v, t in zip(vals, text):
        assert float(t) == pytest.approx(10 ** v, rel=0.06)


def test_cli_view_and_bad_input(files, tmp_path, capsys):
    out = tmp_path / "both.html"
    assert main(["view", str(files["2d"]), str(files["1d"]), "-o", str(out), "--names", "A", "B"]) == 0
    assert out.exists() and "view:" in capsys.readouterr().out
    assert [s["layout"]["title"]["text"] for s in figure_specs(out.read_text())] == ["A", "B"]
    assert main(["view", str(tmp_path / "missing.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["view", str(files["2d"]), "-o", str(tmp_path / "v.png")]) == 2
    assert ".html" in capsys.readouterr().err
    assert main(["view", str(files["2d"]), "--names", "a", "b"]) == 2
    assert "one per file" in capsys.readouterr().err


def test_report_page_tables_and_views(files, tmp_path):
    from landscape.report import Report

    run = tmp_path / "bs16_s0"
    (run / "landscape").mkdir(parents=True)
    (run / "landscape" / "random_2d.h5").write_bytes(files["2d"].read_bytes())
    runs = [{"run": "bs16_s0", "path": str(run / "model.pt"), "batch_size": 16, "weight_decay": 0.0, "seed": 0,
             "train_error": 0.0, "test_error": 0.01, "error_gap": 0.01, "loss_gap": 0.1, "top_eig": 2.0},
            {"run": "bs512_s0", "path": str(tmp_path / "bs512_s0" / "model.pt"), "batch_size": 512,
             "weight_decay": 0.0, "seed": 0, "train_error": 0.0, "test_error": 0.02, "error_gap": 0.02,
             "loss_gap": 0.3, "top_eig": 9.0}]
    page = report_html(Report(runs=runs, measures=["top_eig"]), tmp_path / "report.html").read_text()
    assert "Kendall tau" in page and "top eig" in page and "bs512_s0" in page
    assert len(figure_specs(page)) == 1 and "no surface files" in page
    # whatever fields a statistic carries: X with X_lo/X_hi shows as an interval
    table = html_table([{"measure": "m", "tau": 0.5, "tau_lo": 0.1, "tau_hi": 0.8}])
    assert "0.5 [0.1, 0.8]" in table and "tau lo" not in table


# ------------------------------------------------------------------ the browser
needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")


def _pixels(png):
    import matplotlib.image as mpimg

    return mpimg.imread(str(png))[..., :3]


@needs_chromium
@pytest.mark.parametrize("which", ["1d", "2d", "multi"])
def test_view_renders_in_headless_chromium(files, tmp_path, which):
    surfaces = {"1d": [files["1d"]], "2d": [files["2d"]], "multi": [files["2d"], files["2d_sharp"]]}[which]
    page = view_html(surfaces, tmp_path / f"{which}.html")
    shot = tmp_path / f"{which}.png"
    dom, log = open_page(page, shot)
    status = re.search(r'id="landscape-status">([^<]*)<', dom)
    assert status, f"page did not run its script; chromium said: {log[-2000:]}"
    assert status.group(1) == f"rendered {len(surfaces)} plots; errors: none", status.group(1)
    assert "Uncaught" not in log, log[-2000:]
    assert is_png(shot)
    pixels = _pixels(shot)
    ink = (pixels.min(axis=-1) < 0.9).mean()  # share of pixels that are not white
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert ink > 0.05 and colours > 100, (ink, colours)
    assert dom.count('class="main-svg"') >= len(surfaces)
    if which != "1d":  # the 3D surface is drawn by WebGL on a canvas
        assert dom.count("<canvas") >= 1
        shown = re.sub(r"<script.*?</script>", "", dom, flags=re.S)  # plotly.js itself holds the message
        assert "WebGL is not supported" not in shown
