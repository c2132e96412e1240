"""`landscape bench --baseline ll`: the older-tool-style loop computes what `compute_surface` does."""
import argparse

import h5py
import numpy as np
import torch

import landscape
from landscape.bench.baseline import ll_loop, paired_rows, run
from landscape.directions import random_directions
from landscape.surface import compute_surface


def test_ll_loop_values_equal_compute_surface(convnet, small_digits, tmp_path):
    (x, y), _ = small_digits
    model = convnet.eval()
    dirs = random_directions(model, 2, seed=1)
    xs, ys = np.linspace(-1, 1, 3), np.linspace(-0.5, 0.5, 2)
    before = [p.detach().clone() for p in model.parameters()]
    loss, acc = ll_loop(model, dirs, (x, y), xs, ys, tmp_path / "ll.h5")
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))  # weights restored
    assert np.all(loss > 0) and np.all((acc >= 0) & (acc <= 1))
    # The same evaluation order (batches of 128, unfolded, contiguous): equal up to summation order.
    same = compute_surface(model, dirs, (x, y), xs, ys, batch_size=128, fold_bn=False, progress=False, comm=None)
    np.testing.assert_allclose(loss, same["train_loss"], rtol=1e-6)
    np.testing.assert_array_equal(acc, same["train_acc"])
    # The CLI's defaults (BatchNorm folded, channels-last, another batch size): equal up to float rounding.
    fast = compute_surface(model, dirs, (x, y), xs, ys, batch_size=64, layout="channels_last", progress=False,
                           comm=None)
    assert fast.attrs["fold_bn"] == 3
    np.testing.assert_allclose(loss, fast["train_loss"], rtol=1e-5)
    np.testing.assert_array_equal(acc, fast["train_acc"])
    with h5py.File(tmp_path / "ll.h5", "r") as f:  # the file holds every point, as the older tool writes it
        np.testing.assert_array_equal(f["train_loss"][()], loss)
        np.testing.assert_array_equal(f["xcoordinates"][()], xs)


def test_ll_loop_fills_only_the_points_asked(convnet, small_digits, tmp_path):
    (x, y), _ = small_digits
    dirs = random_directions(convnet, 2, seed=1)
    xs = ys = np.linspace(-1, 1, 3)
    loss, _ = ll_loop(convnet, dirs, (x, y), xs, ys, tmp_path / "ll.h5", points=[4, 7])
    assert np.flatnonzero(loss.ravel() > 0).tolist() == [4, 7]
    full, _ = ll_loop(convnet, dirs, (x, y), xs, ys, tmp_path / "full.h5")
    np.testing.assert_array_equal(loss.ravel()[[4, 7]], full.ravel()[[4, 7]])


def test_paired_rows_reports_ratio(convnet, small_digits, tmp_path):
    (x, y), _ = small_digits
    data = landscape.data.LabeledData(x, y, "digits", 10)
    dirs = random_directions(convnet, 2, seed=0)
    r = paired_rows(convnet.eval(), dirs, data, 3, 2, 2, torch.device("cpu"), str(tmp_path), batch_size=64,
                    layout="contiguous")
    assert r["ratio"] > 0 and r["ratio_iqr"][0] <= r["ratio"] <= r["ratio_iqr"][1]
    assert r["cpu_ratio"] > 0 and r["cpu_ratio_iqr"][0] <= r["cpu_ratio"] <= r["cpu_ratio_iqr"][1]
    assert r["points_per_row"] == 2 and r["rounds"] == 2 and r["fold_bn"] == 3


def test_bench_baseline_runs_both_workloads(capsys):
    args = argparse.Namespace(data_root=None, samples=48, grid=7, repeat=1, device=None)
    result = run(args)
    assert {"convnet/digits", "resnet20/synthetic-cifar"} <= set(result)
    assert result["resnet20/synthetic-cifar"]["samples"] == 48
    assert result["resnet20/synthetic-cifar"]["points_per_row"] == 4  # setup shared as in a real surface
    assert "ours / older-tool loop" in capsys.readouterr().out
