"""SurfaceJob: per-point Hessian extremes (eig=True) against the exact Hessian, and resume rules (eig, fold_bn)."""
import copy

import numpy as np
import pytest
import torch

import landscape
from hessian_cases import exact_hessian, tiny_mlp
from landscape.data import subset_indices
from landscape.directions import load_directions
from landscape.errors import LandscapeError
from landscape.params import weight_tensors
from landscape.workflow import SurfaceJob, eig_note, run_surface_job

EIG_SAMPLES = 200


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory):
    """The 910-parameter tanh MLP of the Hessian tests, as a float32 digits checkpoint."""
    path = tmp_path_factory.mktemp("mlp") / "model.pt"
    return landscape.save_checkpoint(path, tiny_mlp().float(), {"dataset": "digits"})


def _job(ckpt, out, **kw) -> SurfaceJob:
    args = dict(x=np.linspace(-1, 1, 3), y=np.linspace(-1, 1, 3), samples=EIG_SAMPLES, splits=("train",),
                batch_size=256, eig=True, eig_samples=EIG_SAMPLES, out=str(out), progress=False)
    return SurfaceJob(ckpt=str(ckpt), **{**args, **kw})


def test_stored_extremes_are_those_of_the_exact_hessian_at_the_shifted_weights(mlp_ckpt, tmp_path):
    job = _job(mlp_ckpt, tmp_path)
    surf = run_surface_job(job)
    assert surf["max_eig"].shape == surf["min_eig"].shape == (3, 3) and surf.done.all()
    assert np.all(surf["eig_converged"] == 1.0)
    assert (surf.attrs["eig_tol"], surf.attrs["eig_max_iter"], surf.attrs["eig_samples"],
            surf.attrs["eig_seed"]) == (1e-3, 100, EIG_SAMPLES, 0)

    # Independent reference: the model in float64, weights set by hand from the saved direction
    # file, the dense Hessian of the mean loss over the same fixed subset of train samples.
    base = landscape.load_checkpoint(mlp_ckpt).model.double()
    dirs, _ = load_directions(tmp_path / "random_2d_directions.h5", base)
    train = landscape.get_dataset("digits", "train")
    idx = subset_indices(len(train.inputs), EIG_SAMPLES, 0)
    x, y = train.inputs[idx].double(), train.targets[idx]
    tol = job.eig_tol
    for j, i in [(0, 0), (1, 1), (2, 1)]:
        m = copy.deepcopy(base)
        with torch.no_grad():
            for name, t in weight_tensors(m, "weights").items():
                t += surf.x[i] * dirs[0][name].double() + surf.y[j] * dirs[1][name].double()
        ev = torch.linalg.eigvalsh(exact_hessian(m, x, y)).numpy()
        assert surf["max_eig"][j, i] == pytest.approx(ev[-1], rel=tol), (i, j)
        assert surf["min_eig"][j, i] == pytest.approx(ev[0], rel=tol), (i, j)
    assert np.ptp(surf["max_eig"]) > 0.1 * abs(surf["max_eig"][1, 1])  # the points really differ


def test_resume_checks_the_eig_settings(mlp_ckpt, tmp_path, capsys):
    line = dict(y=None, x=np.linspace(-1, 1, 3))
    first = run_surface_job(_job(mlp_ckpt, tmp_path, **line))
    again = run_surface_job(_job(mlp_ckpt, tmp_path, **line))  # the same job: nothing recomputed
    assert "nothing to do" in capsys.readouterr().out
    assert np.array_equal(first["max_eig"], again["max_eig"])
    with pytest.raises(LandscapeError, match="eig_tol=0.001, this command asks for eig_tol=0.0001"):
        run_surface_job(_job(mlp_ckpt, tmp_path, eig_tol=1e-4, **line))
    with pytest.raises(LandscapeError, match="eig_samples=200, this command asks for eig_samples=300"):
        run_surface_job(_job(mlp_ckpt, tmp_path, eig_samples=300, **line))
    with pytest.raises(LandscapeError, match="with --eig --eig-tol 0.001 --eig-max-iter 100 --eig-samples 200"):
        run_surface_job(_job(mlp_ckpt, tmp_path, eig=False, **line))
    plain = tmp_path / "plain"
    run_surface_job(_job(mlp_ckpt, plain, eig=False, **line))
    with pytest.raises(LandscapeError, match="computed without --eig; use another --out"):
        run_surface_job(_job(mlp_ckpt, plain, **line))


@pytest.mark.parametrize("bad, fragment", [(dict(eig_tol=-1.0), "--eig-tol must be positive"),
                                           (dict(eig_max_iter=1), "--eig-max-iter must be at least 2"),
                                           (dict(eig_samples=0), "--eig-samples must be positive")])
def test_bad_eig_settings_are_refused_before_any_work(mlp_ckpt, tmp_path, bad, fragment):
    with pytest.raises(LandscapeError, match=fragment):
        run_surface_job(_job(mlp_ckpt, tmp_path, **bad))
    assert not any(tmp_path.iterdir())


def test_points_whose_lanczos_stopped_early_are_flagged(mlp_ckpt, tmp_path):
    surf = run_surface_job(_job(mlp_ckpt, tmp_path, y=None, eig_max_iter=2, eig_tol=1e-12))
    assert np.all(surf["eig_converged"] == 0.0) and np.all(surf["min_eig"] <= surf["max_eig"])
    assert eig_note(surf).startswith("note: at 3/3 points Lanczos did not reach --eig-tol")
    assert eig_note(run_surface_job(_job(mlp_ckpt, tmp_path / "ok", y=None))) is None


def test_fold_bn_auto_resumes_a_file_the_way_it_was_made(trained_ckpt, tmp_path, capsys):
    """A BN convnet: auto folds a new surface, follows an existing file's choice, and on/off must match it."""
    line = dict(y=None, eig=False, eig_samples=None, threads=1)
    fresh = run_surface_job(_job(trained_ckpt, tmp_path / "auto", **line))
    assert fresh.attrs["fold_bn"] == 3
    off = run_surface_job(_job(trained_ckpt, tmp_path / "off", fold_bn="off", **line))
    assert off.attrs["fold_bn"] == 0
    assert np.allclose(fresh["train_loss"], off["train_loss"], rtol=1e-5, atol=0)
    capsys.readouterr()
    again = run_surface_job(_job(trained_ckpt, tmp_path / "off", **line))  # auto: unfolded, as the file was made
    assert "nothing to do" in capsys.readouterr().out and again.attrs["fold_bn"] == 0
    with pytest.raises(LandscapeError, match="fold_bn=0, this command asks for fold_bn=3"):
        run_surface_job(_job(trained_ckpt, tmp_path / "off", fold_bn="on", **line))
    with pytest.raises(LandscapeError, match="fold_bn=3, this command asks for fold_bn=0"):
        run_surface_job(_job(trained_ckpt, tmp_path / "auto", fold_bn="off", **line))
    with pytest.raises(LandscapeError, match="--fold-bn must be auto, on or off"):
        run_surface_job(_job(trained_ckpt, tmp_path / "bad", fold_bn="sometimes", **line))


def test_line_with_y_spans_both_minima_and_a_random_direction_orthogonal_to_the_line(tmp_path):
    from landscape.bnstats import is_stat_name

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8)))
    ckpts = [landscape.save_checkpoint(tmp_path / f"m{k}.pt", m, {"dataset": "digits"}) for k, m in enumerate(models)]
    job = SurfaceJob(ckpt=str(ckpts[0]), ckpt2=str(ckpts[1]), x=np.array([0.0, 1.0]), y=np.array([-0.5, 0.0, 0.5]),
                     samples=100, bn_samples=100, splits=("train",), batch_size=256, out=str(tmp_path / "out"),
                     progress=False)
    surface = run_surface_job(job)
    assert surface.attrs["bn_stats"] == "recompute" and surface.attrs["y_orthogonal"]  # auto between checkpoints
    (dx, dy), _ = load_directions(tmp_path / "out" / "line_2d_directions.h5")
    names = [n for n in dx if not is_stat_name(n)]
    line = np.concatenate([dx[n].numpy().ravel() for n in names]).astype(np.float64)
    rand = landscape.random_directions(models[0], 1, kind="states")[0]
    r = np.concatenate([rand[n].numpy().ravel() for n in names]).astype(np.float64)
    y = np.concatenate([dy[n].numpy().ravel() for n in names]).astype(np.float64)
    assert np.allclose(y, r - (r @ line) / (line @ line) * line, rtol=1e-5, atol=1e-7)  # Gram-Schmidt by hand
    assert abs(y @ line) <= 1e-5 * np.linalg.norm(y) * np.linalg.norm(line)
    assert all(not dy[n].any() for n in dy if is_stat_name(n))  # y moves no running statistic
    assert np.allclose(dx[names[0]].numpy(), (models[1].state_dict()[names[0]] - models[0].state_dict()[names[0]]).numpy())
