"""Curvature over training: B_simple against closed forms, lambda_max on a quadratic, warm vs cold, resume."""
import math

import numpy as np
import pytest
import torch

import landscape
from landscape.errors import LandscapeError
from landscape.track import Tracker, draw_track, noise_scale, per_sample_gradients, track_run


def _closed_form_b(g: np.ndarray) -> float:
    """B_simple from per-sample gradients by the definitions, in float64 numpy."""
    n = len(g)
    mean = g.mean(axis=0)
    tr_sigma = ((g - mean) ** 2).sum() / (n - 1)
    return tr_sigma / (mean @ mean - tr_sigma / n)


def _data(n=300, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, rng


def test_b_simple_of_linear_regression_matches_the_closed_form():
    x, rng = _data()
    w, b = rng.normal(size=5), 0.3
    y = x @ rng.normal(size=5) + 0.5 * rng.normal(size=len(x))
    model = torch.nn.Linear(5, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w).view(1, 5))
        model.bias.fill_(b)
    r = x @ w + b - y  # per-sample loss (w.x + b - y)^2: gradient 2 r [x, 1]
    g = 2 * r[:, None] * np.hstack([x, np.ones((len(x), 1))])
    data = (torch.from_numpy(x), torch.from_numpy(y))
    res = noise_scale(per_sample_gradients(model, data, "mse"))
    assert res["b_simple"] == pytest.approx(_closed_form_b(g), rel=1e-6)
    assert res["grad_norm"] == pytest.approx(np.linalg.norm(g.mean(axis=0)), rel=1e-6)
    assert 0 < res["b_simple_se"] < res["b_simple"]


def test_b_simple_of_logistic_regression_matches_the_closed_form():
    x, rng = _data(seed=1)
    W, c = rng.normal(size=(2, 5)) * 0.5, rng.normal(size=2) * 0.1
    y = (x @ rng.normal(size=5) + rng.normal(size=len(x)) > 0).astype(np.int64)
    model = torch.nn.Linear(5, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(W))
        model.bias.copy_(torch.from_numpy(c))
    z = x @ W.T + c
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    e = p - np.eye(2)[y]  # d CE / d logits
    g = np.hstack([(e[:, :, None] * x[:, None, :]).reshape(len(x), -1), e])  # weight (row-major), then bias
    res = noise_scale(per_sample_gradients(model, (torch.from_numpy(x), torch.from_numpy(y)), "crossentropy"))
    assert res["b_simple"] == pytest.approx(_closed_form_b(g), rel=1e-6)


def test_noise_dominated_gradient_gives_infinite_b():
    g = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    res = noise_scale(g)
    assert math.isinf(res["b_simple"]) and res["grad_norm"] == 0
    with pytest.raises(LandscapeError, match="at least 2 samples"):
        noise_scale(g[:1])


def test_lambda_max_over_full_batch_gd_on_a_quadratic_is_the_quadratics_eigenvalue(tmp_path):
    """Linear regression is a quadratic: its Hessian 2 X^T X / n (with the bias column) at every step."""
    from landscape.train import train

    x, rng = _data(n=200, d=4, seed=2)
    y = x @ rng.normal(size=4) + 0.1 * rng.normal(size=len(x))
    xa = np.hstack([x, np.ones((len(x), 1))])
    top = float(np.linalg.eigvalsh(2 * xa.T @ xa / len(x)).max())
    lr = 1.0 / top  # below the edge 2/top: full-batch GD converges
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).double()
    data = (torch.from_numpy(x), torch.from_numpy(y))
    tracker = Tracker(data, tmp_path, samples=None, loss="mse", tol=1e-8, n_probes=4, cold_check=True,
                      run_meta={"lr": lr, "momentum": 0.0})
    result = train(model, data, batch_size=len(x), lr=lr, momentum=0.0, steps=12, loss="mse", progress=False,
                   on_step=tracker.callback(4))
    assert [p["step"] for p in tracker.points] == [0, 4, 8, 12]
    for p in tracker.points:
        assert p["lambda_max"] == pytest.approx(top, rel=1e-6) and p["lambda_max"] < 2 / p["lr"]
        assert p["lambda_max_cold"] == pytest.approx(top, rel=1e-6)
    assert tracker.points[-1]["grad_norm"] < 0.5 * tracker.points[0]["grad_norm"]  # below the edge it converges
    assert result.meta["train_loss"] < 0.5 * float(((y - y.mean()) ** 2).mean())


def test_in_loop_tracking_leaves_training_unchanged(tmp_path, small_digits):
    from landscape.train import init_model, train

    train_data, _ = small_digits
    spec = landscape.get_dataset("digits", "train")
    runs = []
    for hook in (None, Tracker(train_data, None, samples=64, n_probes=2, max_iter=20, tol=1e-2).callback(3)):
        model = init_model("convnet", spec, seed=0, channels=[4, 8, 8])
        train(model, train_data, batch_size=50, lr=0.1, steps=6, progress=False, on_step=hook)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_track_run_warm_equals_cold_resumes_and_draws(tmp_path, digits):
    from landscape.train import init_model, train

    tr, te = digits
    run = tmp_path / "run"
    model = init_model("convnet", tr, seed=0, channels=[4, 8, 8])
    train(model, (tr.inputs[:256], tr.targets[:256]), batch_size=32, lr=0.1, epochs=2, snapshot_every=1,
          out_dir=run, dataset="digits", progress=False)
    common = dict(samples=128, tol=1e-4, n_probes=4, cold_check=True, progress=False)
    first = track_run(run, **common)
    steps = sorted(first.done_steps())
    assert steps == [0, 8, 16]  # snapshots at epochs 0-2 (model.pt is the epoch-2 one)
    for p in first.points:
        assert p["lambda_max"] == pytest.approx(p["lambda_max_cold"], rel=1e-3)
        assert p["b_simple"] > 0 and p["trace_se"] >= 0 and p["lr"] == pytest.approx(0.1)
    assert [p["warm_start"] for p in first.points] == [False, True, True]
    assert first.hvps_saved() == sum(p["cold_hvps"] - p["lambda_max_hvps"] for p in first.points)
    # resume: drop the last point, rerun, get the same numbers for it
    data = first.to_dict()
    last = data["points"].pop()
    resumed_tracker = Tracker(landscape.get_dataset("digits", "train"), None, samples=128, tol=1e-4, n_probes=4,
                              cold_check=True)
    assert resumed_tracker.settings == first.settings
    from landscape.jsonfile import write_json_atomic

    write_json_atomic(run / "track.json", data)
    again = track_run(run, **common)
    redo = [p for p in again.points if p["step"] == last["step"]][0]
    assert redo["trace"] == last["trace"] and redo["b_simple"] == last["b_simple"]
    with pytest.raises(LandscapeError, match="other settings \\(n_probes\\)"):
        track_run(run, **{**common, "n_probes": 6})
    paths = draw_track(again.to_dict(), tmp_path / "track")
    assert paths[0].exists() and paths[0].stat().st_size > 10_000


def test_cli_refuses_tracking_options_without_track_every(capsys):
    from landscape.cli import main

    assert main(["train", "--out", "unused", "--track-probes", "5"]) == 2
    err = capsys.readouterr().err
    assert "--track-probes applies only with --track-every N" in err and len(err.strip().splitlines()) == 1
