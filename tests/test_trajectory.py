"""PCA trajectories: directions against numpy's SVD, an exactly planar path, run directories, the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.errors import LandscapeError
from landscape.trajectory import (Trajectory, draw_trajectory, load_trajectory, pca_directions,
                                  prepare_trajectory_job, save_trajectory, snapshot_files, trajectory_grid,
                                  trajectory_pca)

from conftest import run_cli

SHAPES = {"fc.weight": (6, 5), "fc.bias": (6,), "out.weight": (3, 6)}


def _flat(d, names=SHAPES):
    return torch.cat([d[k].reshape(-1).double() for k in names]).numpy()


def _unflat(v, names=SHAPES):
    out, i = {}, 0
    for k, shape in names.items():
        n = int(np.prod(shape))
        out[k] = torch.from_numpy(np.asarray(v[i:i + n], dtype=np.float64).reshape(shape))
        i += n
    return out


def _random_walk(n=9, seed=0):
    rng = np.random.default_rng(seed)
    p = sum(int(np.prod(s)) for s in SHAPES.values())
    final = rng.normal(size=p)
    steps = rng.normal(size=(n, p)) * np.linspace(2.0, 0.2, p)  # anisotropic, so PCs are well separated
    path = final + np.cumsum(steps[::-1], axis=0)[::-1]
    return [_unflat(v) for v in path], _unflat(final), path - final


def test_pca_matches_numpy_svd_of_the_same_matrix():
    snaps, final, m = _random_walk()
    dirs, ratio, coords, svals = pca_directions(snaps, final, ignore="none")
    mc = m - m.mean(axis=0)
    _, s, vt = np.linalg.svd(mc, full_matrices=False)
    np.testing.assert_allclose(svals[:len(s)], s, rtol=1e-9, atol=1e-7 * s[0])  # via the Gram matrix: ~sqrt(eps)
    np.testing.assert_allclose(ratio, s[:2] ** 2 / (s ** 2).sum(), rtol=1e-9)
    for k in range(2):
        d = _flat(dirs[k])
        sign = np.sign(d @ vt[k])
        np.testing.assert_allclose(d, sign * vt[k], atol=1e-6)  # directions are stored as float32
        np.testing.assert_allclose(coords[:, k], sign * (m @ vt[k]), rtol=1e-9, atol=1e-9)
        assert coords[0, k] <= 0  # sign convention: the path starts on the negative side
        assert abs(np.linalg.norm(d) - 1) < 1e-6


def test_biasbn_leaves_biases_out_of_the_pca():
    snaps, final, m = _random_walk(seed=1)
    dirs, ratio, coords, _ = pca_directions(snaps, final, ignore="biasbn")
    keep = np.concatenate([np.full(int(np.prod(s)), k != "fc.bias") for k, s in SHAPES.items()])
    mc = m[:, keep] - m[:, keep].mean(axis=0)
    _, s, vt = np.linalg.svd(mc, full_matrices=False)
    np.testing.assert_allclose(ratio, s[:2] ** 2 / (s ** 2).sum(), rtol=1e-9)
    for k in range(2):
        assert torch.count_nonzero(dirs[k]["fc.bias"]) == 0
        d = _flat(dirs[k])[keep]
        np.testing.assert_allclose(np.abs(d @ vt[k]), 1.0, atol=1e-6)


def test_a_planar_trajectory_is_recovered_exactly():
    rng = np.random.default_rng(3)
    p = sum(int(np.prod(s)) for s in SHAPES.values())
    e, _ = np.linalg.qr(rng.normal(size=(p, 2)))  # orthonormal e1, e2
    final = rng.normal(size=p)
    t = 0.3 + np.linspace(0, 2 * np.pi, 12, endpoint=False)
    a, b = 3 * np.cos(t), np.sin(t)  # centred, uncorrelated, variances 4.5 and 0.5: the PCs are e1 and e2
    snaps = [_unflat(final + ai * e[:, 0] + bi * e[:, 1]) for ai, bi in zip(a, b)]
    dirs, ratio, coords, svals = pca_directions(snaps, _unflat(final), ignore="none")
    assert ratio.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(ratio, [0.9, 0.1], rtol=1e-10)
    assert svals[2:].max() < 1e-6 * svals[0]
    for k, (truth, c) in enumerate(((a, e[:, 0]), (b, e[:, 1]))):
        sign = np.sign(coords[0, k]) * np.sign(truth[0])
        np.testing.assert_allclose(coords[:, k], sign * truth, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(_flat(dirs[k]), sign * c, atol=1e-6)
    # and the projections rebuild every snapshot
    for snap, (x, y) in zip(snaps, coords):
        rebuilt = final + x * _flat(dirs[0]) + y * _flat(dirs[1])
        np.testing.assert_allclose(rebuilt, _flat(snap), atol=1e-5)


def test_degenerate_paths_are_refused():
    snaps, final, _ = _random_walk(n=2)
    with pytest.raises(LandscapeError, match="at least 3 snapshots"):
        pca_directions(snaps, final)
    line = [{k: final[k] + s * torch.ones_like(final[k]) for k in final} for s in (1.0, 2.0, 3.0)]
    with pytest.raises(LandscapeError, match="straight line"):
        pca_directions(line, final, ignore="none")


def test_grid_covers_the_path_and_the_origin():
    coords = np.array([[-10.0, 3.0], [-4.0, 1.0], [-1.0, 0.2]])
    x, y = trajectory_grid(coords, points=21, margin=0.1)
    assert len(x) == len(y) == 21
    assert x[0] < -10 and x[-1] > 0 and y[0] < 0 and y[-1] > 3
    assert np.ptp(y) >= 0.5 * np.ptp(x) - 1e-9  # a thin strip is widened


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits):
    from landscape.train import init_model, train

    tr, te = digits
    out = tmp_path_factory.mktemp("traj") / "run"
    model = init_model("mlp", tr, seed=0, hidden=[16])
    train(model, tr, te, batch_size=128, lr=0.1, epochs=6, seed=0, snapshot_every=1, out_dir=out,
          dataset="digits", progress=False)
    return out


def test_run_directory_pca_round_trips_through_the_direction_file(run_dir, tmp_path):
    epochs = [e for e, _ in snapshot_files(run_dir)]
    assert epochs == list(range(7))
    traj = trajectory_pca(run_dir)
    assert isinstance(traj, Trajectory) and traj.epochs == epochs
    assert 0 < traj.explained_variance[1] <= traj.explained_variance[0] < 1
    np.testing.assert_allclose(traj.coords[-1], 0.0, atol=1e-6)  # the last snapshot is the final model
    xs, ys, labels = traj.path()
    assert len(xs) == 7 and labels[-1] == 6  # no extra end point when a snapshot is the final model
    back = load_trajectory(save_trajectory(tmp_path / "t.h5", traj))
    np.testing.assert_allclose(back.coords, traj.coords)
    np.testing.assert_allclose(back.explained_variance, traj.explained_variance)
    assert back.epochs == traj.epochs and back.source == traj.source
    for a, b in zip(back.directions, traj.directions):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_prepare_job_reuses_directions_and_checks_the_checkpoint(run_dir, tmp_path):
    from landscape.workflow import SurfaceJob

    job = SurfaceJob(ckpt=str(run_dir / "model.pt"), x=np.linspace(-1, 1, 9), out=str(tmp_path / "o"))
    ready = prepare_trajectory_job(job, run_dir)
    traj = load_trajectory(ready.dir_file)
    assert ready.y is not None and len(ready.x) == len(ready.y) == 9
    assert ready.x.min() < traj.xs.min() and ready.x.max() > max(traj.xs.max(), 0)
    assert ready.y.min() < traj.ys.min() and ready.y.max() > max(traj.ys.max(), 0)
    mtime = (tmp_path / "o" / "trajectory_directions.h5").stat().st_mtime_ns
    again = prepare_trajectory_job(job, run_dir)
    assert (tmp_path / "o" / "trajectory_directions.h5").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.x, ready.x)
    given = prepare_trajectory_job(SurfaceJob(ckpt=job.ckpt, x=[-1, 0, 1], y=[-2, 2], out=job.out), run_dir,
                                   auto_grid=False)
    assert list(given.y) == [-2, 2]
    with pytest.raises(LandscapeError, match="not .*model.pt"):
        prepare_trajectory_job(SurfaceJob(ckpt=str(run_dir / "snapshots" / "epoch_000.pt"), x=[0], out=job.out),
                               run_dir)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.pt").write_bytes((run_dir / "model.pt").read_bytes())
    with pytest.raises(LandscapeError, match="no snapshots"):
        prepare_trajectory_job(SurfaceJob(ckpt=str(bare / "model.pt"), x=[0], out=job.out), bare)


def test_cli_plot_trajectory_draws_the_path(run_dir, tmp_path):
    out = tmp_path / "plot"
    res = run_cli("plot", "--trajectory", str(run_dir), "--x", "-1:1:5", "--y", "-1:1:5", "--samples", "64",
                  "--out", str(out), "--no-progress", env={"LANDSCAPE_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert (out / "custom_2d_trajectory.png").stat().st_size > 10_000
    from landscape.surface import load_surface

    surface = load_surface(out / "custom_2d.h5")
    assert surface.complete and surface.attrs["checkpoint"] == str(run_dir / "model.pt")
    ax = draw_trajectory(surface, out / "trajectory_directions.h5")
    assert "% of variance" in ax.get_xlabel() and "% of variance" in ax.get_ylabel()
    bad = run_cli("plot", "--trajectory", str(run_dir), "--x", "-1:1:5", "--out", str(out), "--no-progress")
    assert bad.returncode == 2 and "both --x and --y" in bad.stderr and "Traceback" not in bad.stderr


def test_widen_grid_holds_a_path_that_leaves_it():
    import warnings

    from landscape.trajectory import TrajectoryGridWarning, widen_grid

    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a path inside the grid leaves it alone, silently
        same = widen_grid(x, y, np.array([0.5, 0.0]), np.array([-0.9, 0.0]))
    assert same[0] is x and same[1] is y
    with pytest.warns(TrajectoryGridWarning, match=r"reaches x in \[0, 3\].*widened"):
        wx, wy = widen_grid(x, y, np.array([3.0, 0.0]), np.array([0.5, 0.0]))
    assert len(wx) == 5 and wx.min() == -1 and wx.max() > 3.0 and wy is y
