import csv
import itertools
import math

import numpy as np
import pytest
import torch

import landscape
from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.report import Measure, build_report, granulated_tau, kendall_tau, measure_checkpoint
from landscape.train import init_model


def brute_tau_b(x, y):
    """Kendall tau-b by counting every pair: (C - D) / sqrt((n0 - tx) (n0 - ty))."""
    c = d = tx = ty = 0
    pairs = list(itertools.combinations(range(len(x)), 2))
    for i, j in pairs:
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tx += sx == 0
        ty += sy == 0
        if sx * sy > 0:
            c += 1
        elif sx * sy < 0:
            d += 1
    n0 = len(pairs)
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


def test_kendall_tau_matches_pair_count():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 4, size=9).astype(float)  # ties on purpose
        y = x + rng.integers(-2, 3, size=9)
        assert kendall_tau(x, y) == pytest.approx(brute_tau_b(x, y))
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_granulated_tau_by_hand():
    rows = []
    gap = {(32, 0.0): 0.01, (128, 0.0): 0.03, (512, 0.0): 0.02,
           (32, 5e-4): 0.02, (128, 5e-4): 0.01, (512, 5e-4): 0.05}
    sharp = {(32, 0.0): 1.0, (128, 0.0): 2.0, (512, 0.0): 3.0,
             (32, 5e-4): 3.0, (128, 5e-4): 1.0, (512, 5e-4): 2.0}
    for (bs, wd), g in gap.items():
        rows.append({"batch_size": bs, "weight_decay": wd, "seed": 0, "error_gap": g, "m": sharp[(bs, wd)]})
    res = granulated_tau(rows, "m")
    # batch-size axis, wd 0: sharp (1,2,3) vs gap (.01,.03,.02): pairs ++, ++, +- -> (2-1)/3
    # wd 5e-4: sharp (3,1,2) vs gap (.02,.01,.05): (32,128) ++, (32,512) -+, (128,512) ++ -> 1/3
    assert res["batch_size"] == pytest.approx(1 / 3)
    # weight-decay axis, per batch size: 32: sharp up, gap up (+1); 128: down/down (+1); 512: down/up (-1)
    assert res["weight_decay"] == pytest.approx(1 / 3)
    assert res["overall"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Six small checkpoints (2 batch sizes x 1 weight decay x 3 seeds) with synthetic metrics."""
    root = tmp_path_factory.mktemp("runs")
    data = landscape.get_dataset("digits", "train")
    rng = np.random.default_rng(1)
    for bs, seed in itertools.product([32, 256], [0, 1, 2]):
        model = init_model("mlp", data, seed=seed, hidden=[4])
        tr_acc, te_acc = 0.99 - 0.01 * seed, 0.9 - 0.02 * seed - (0.03 if bs == 256 else 0)
        meta = {"dataset": "digits", "batch_size": bs, "weight_decay": 5e-4, "seed": seed, "lr": 0.1,
                "train_loss": float(rng.uniform(0.01, 0.1)), "test_loss": float(rng.uniform(0.2, 0.5)),
                "train_acc": tr_acc, "test_acc": te_acc}
        landscape.save_checkpoint(root / f"bs{bs}_s{seed}" / "model.pt", model, meta)
        landscape.save_checkpoint(root / f"bs{bs}_s{seed}" / "snapshots" / "epoch_000.pt", model, meta)
    return root


def test_report_table_gaps_norms_and_cache(runs_dir, tmp_path):
    calls = []

    def counting(model, data, settings):
        calls.append(1)
        return float(sum(p.detach().abs().sum() for p in model.parameters())), None

    l1 = Measure("l1", counting, "sum of |w|")
    report = build_report(runs_dir, ["weight_norm", l1], progress=False)
    assert len(report.runs) == 6 and len(calls) == 6  # snapshots are not final checkpoints
    for r in report.runs:
        ck = landscape.load_checkpoint(r["path"])
        norm = math.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in ck.model.parameters()))
        assert r["weight_norm"] == pytest.approx(norm)
        assert r["error_gap"] == pytest.approx((1 - ck.meta["test_acc"]) - (1 - ck.meta["train_acc"]))
        assert r["loss_gap"] == pytest.approx(ck.meta["test_loss"] - ck.meta["train_loss"])
    g = {row["batch_size"]: row for row in report.groups()}
    gaps = [r["error_gap"] for r in report.runs if r["batch_size"] == 256]
    assert g[256]["n"] == 3 and g[256]["error_gap_mean"] == pytest.approx(np.mean(gaps))
    assert g[256]["error_gap_sd"] == pytest.approx(np.std(gaps, ddof=1))
    taus = report.taus()
    assert taus["l1"]["tau_error_gap"] == pytest.approx(brute_tau_b([r["l1"] for r in report.runs],
                                                                    [r["error_gap"] for r in report.runs]))
    # cached: a second report computes nothing new
    again = build_report(runs_dir, ["weight_norm", l1], progress=False)
    assert len(calls) == 6 and [r["l1"] for r in again.runs] == [r["l1"] for r in report.runs]
    # a changed checkpoint (new sha256) is measured again, and only that one
    ck = landscape.load_checkpoint(runs_dir / "bs256_s2" / "model.pt")
    with torch.no_grad():
        next(ck.model.parameters()).mul_(2)
    landscape.save_checkpoint(runs_dir / "bs256_s2" / "model.pt", ck.model, ck.meta)
    build_report(runs_dir, ["weight_norm", l1], progress=False)
    assert len(calls) == 7
    paths = report.save(tmp_path)
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch_size"]) for r in rows] == [32, 256]
    md = paths["markdown"].read_text()
    assert "| batch size |" in md and "granulated" in md and "±" in md
    assert "weight_norm" in report.format_table()


def test_top_eig_matches_dense_hessian(runs_dir):
    pytest.importorskip("landscape.hessian")
    path = runs_dir / "bs32_s0" / "model.pt"
    row = measure_checkpoint(path, ["top_eig"], samples=64, recompute=True)
    ck = landscape.load_checkpoint(path)
    data = landscape.get_dataset("digits", "train")
    idx = landscape.data.subset_indices(len(data), 64, seed=0)
    x, y = data.inputs[idx], data.targets[idx]
    names = [n for n, _ in ck.model.named_parameters()]
    shapes = [p.shape for _, p in ck.model.named_parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in ck.model.parameters()]).double()

    def loss_of(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = flat[i:i + s.numel()].view(s).float()
            i += s.numel()
        out = torch.func.functional_call(ck.model, params, (x,))
        return torch.nn.functional.cross_entropy(out, y)

    dense = torch.autograd.functional.hessian(loss_of, flat0)
    top = float(torch.linalg.eigvalsh(dense).max())
    assert row["top_eig"] == pytest.approx(top, rel=1e-3)


def test_cli_report_and_bad_input(runs_dir, tmp_path, capsys):
    assert main(["report", str(runs_dir), "--measures", "weight_norm", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau" in out and (tmp_path / "report.md").exists()
    assert main(["report", str(runs_dir), "--measures", "nonsense"]) == 2
    assert "unknown measure" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    with pytest.raises(LandscapeError, match="no final checkpoints"):
        build_report(tmp_path, ["weight_norm"], progress=False)


def test_vectorized_tau_b_bootstrap_and_exact_p_value():
    from scipy.stats import kendalltau

    from landscape.report import _tau_b_rows, kendall_tau_ci

    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(7, 10)).astype(float)  # ties on purpose
    y = x + rng.integers(-2, 3, size=(7, 10))
    assert np.allclose(_tau_b_rows(x, y), [brute_tau_b(a, b) for a, b in zip(x, y)])
    a, b = x[0], y[0]
    res = kendall_tau_ci(a, b, n_boot=300, seed=5)
    idx = np.random.default_rng(5).integers(0, len(a), size=(300, len(a)))  # the same resamples, scipy's tau
    boot = np.array([kendalltau(a[i], b[i]).statistic for i in idx])
    boot = boot[np.isfinite(boot)]
    assert res["ci"] == pytest.approx([np.quantile(boot, 0.025), np.quantile(boot, 0.975)])
    assert res["ci"][0] <= res["tau"] <= res["ci"][1] and res["n"] == 10
    assert kendall_tau_ci([1, 2, 3, 4], [1, 2, 3, 4])["p_value"] == pytest.approx(2 / 24)  # exact: 2 of 4! orders


def test_granulated_interval_and_loss_band_by_hand():
    from landscape.report import granulated_tau_ci, loss_band

    rows = [{"batch_size": bs, "weight_decay": wd, "seed": 0, "error_gap": g, "m": m}
            for bs, wd, g, m in [(32, 0, .01, 1), (128, 0, .02, 2), (32, 1, .01, 2), (128, 1, .03, 3)]]
    res = granulated_tau_ci(rows, "m", n_boot=200)
    assert res["batch_size"] == {"tau": 1.0, "ci": [1.0, 1.0], "groups": 2}  # both groups agree: no spread
    assert res["weight_decay"]["tau"] == 1.0 and res["overall"]["tau"] == 1.0
    band = loss_band([0.1, 0.2, 0.3, 0.5, 0.005, float("nan")])
    assert band["median"] == pytest.approx(0.2) and (band["low"], band["high"]) == pytest.approx((0.1, 0.4))
    assert band["in_band"] == [True, True, True, False, True, False]
    with pytest.raises(LandscapeError, match="band factor must be above 1"):
        loss_band([0.1], factor=1.0)


def test_report_says_when_too_few_runs_flags_the_loss_band_and_has_units(runs_dir, tmp_path):
    from landscape.report import MIN_RUNS, Report

    full = build_report(runs_dir, ["weight_norm"], progress=False)
    assert full.meaningful and "not meaningful" not in full.format_table()
    assert "weight norm [w]" in full.format_table() and "error gap [fraction]" in full.format_table()
    two = Report(runs=[dict(r) for r in full.runs[:2]], measures=["weight_norm"], units={"weight_norm": "w"})
    assert not two.meaningful and f"fewer than {MIN_RUNS} runs a rank correlation is not meaningful" in \
        two.format_table()
    rows = [dict(r) for r in full.runs]
    rows[0]["train_loss"] = 10 * np.median([r["train_loss"] for r in rows])
    flagged = Report(runs=rows, measures=["weight_norm"])
    assert [r["in_loss_band"] for r in flagged.runs].count(False) >= 1 and not flagged.runs[0]["in_loss_band"]
    assert "outside the training-loss band" in flagged.format_table() and rows[0]["run"] in flagged.format_table()
    data = flagged.to_dict()
    assert data["statistics"]["meaningful"] and data["outside_loss_band"][0] == rows[0]["run"]
    assert data["units"]["weight_norm"] == "w" and data["units"]["error_gap"] == "fraction"
    t = data["taus"]["weight_norm"]
    assert set(t) >= {"tau_error_gap", "tau_error_gap_ci", "tau_error_gap_p", "granulated_overall_ci",
                      "tau_error_gap_in_band", "n_in_band"}
    paths = flagged.save(tmp_path)
    assert "outside loss band" in paths["markdown"].read_text()
    from landscape.report import resolve_measures

    assert [m.name for m in resolve_measures("pacbayes")] == ["pacbayes_flatness"]  # the old name still works
    assert resolve_measures("keskar")[0].unit == "%"


def test_tracked_runs_appear_in_the_report_with_their_edges(runs_dir, tmp_path):
    from landscape.jsonfile import write_json_atomic

    points = [{"step": s, "lambda_max": lam, "trace": 3.0, "trace_se": 0.1, "b_simple": b, "b_simple_se": 1.0,
               "lambda_max_hvps": 9} for s, lam, b in ((0, 1.0, 10.0), (10, 5.0, 20.0), (20, 4.0, 30.0))]
    write_json_atomic(runs_dir / "bs32_s0" / "track.json",
                      {"format": "landscape-track", "settings": {"samples": 64}, "hvps_saved": 7,
                       "run": {"lr": 0.1, "momentum": 0.9, "batch_size": 32}, "points": points})
    try:
        report = build_report(runs_dir, ["weight_norm"], progress=False)
        summary = report.to_dict()["tracks"]
        assert list(summary) == ["bs32_s0"]
        t = summary["bs32_s0"]
        assert (t["lambda_max_final"], t["lambda_max_peak"], t["b_simple_final"], t["hvps_saved"]) == (4.0, 5.0, 30.0, 7)
        assert t["edges"] == pytest.approx({"2/lr": 20.0, "2(1+β)/lr": 38.0})
        paths = report.save(tmp_path)
        assert paths["tracks"].exists()
    finally:
        (runs_dir / "bs32_s0" / "track.json").unlink()


@pytest.fixture(scope="module")
def scaling_runs(tmp_path_factory):
    """A synthetic sweep: batch 8-64 x 2 seeds whose test error first drops below 0.1 at S(B) = 50 (1 + 32 / B)
    steps (seed 1 10% later), each with a track.json whose B_simple is 30 + 4 seed + B / 8 at every step."""
    from landscape.jsonfile import write_json_atomic

    root = tmp_path_factory.mktemp("scaling")
    data = landscape.get_dataset("digits", "train")
    model = init_model("mlp", data, seed=0, hidden=[4])
    for bs, seed in itertools.product([8, 16, 32, 64], [0, 1]):
        run = root / f"bs{bs}_s{seed}"
        steps = round(50 * (1 + 32 / bs) * (1.1 if seed else 1.0))
        meta = {"dataset": "digits", "batch_size": bs, "weight_decay": 0.0, "seed": seed, "lr": 0.1, "base_lr": 0.1,
                "target_error": 0.1, "train_loss": 0.05, "test_loss": 0.3, "train_acc": 0.99, "test_acc": 0.95}
        landscape.save_checkpoint(run / "model.pt", model, meta)
        curve = [{"step": s, "test_error": 0.5 if s < steps else 0.05, "train_time": s * 0.01}
                 for s in (1, steps - 1, steps, 400)]
        write_json_atomic(run / "history.json", {"history": curve, "meta": meta, "status": "finished"})
        points = [{"step": s, "lambda_max": 1.0, "trace": 1.0, "trace_se": 0.1, "b_simple": 30 + 4 * seed + bs / 8,
                   "b_simple_se": 1.0, "lambda_max_hvps": 5} for s in range(0, 401, 50)]
        points[0].update(b_simple=None, b_simple_se=None)  # |G|^2 unresolved at the start: JSON's null for infinity
        write_json_atomic(run / "track.json", {"format": "landscape-track", "settings": {"samples": 64},
                                               "run": {"lr": 0.1, "momentum": 0.9, "batch_size": bs}, "points": points})
    return root


def test_report_draws_the_critical_batch_size_with_both_numbers(scaling_runs, tmp_path):
    report = build_report(scaling_runs, [], progress=False)
    crit = report.to_dict()["critical_batch"]
    assert crit["target_error"] == 0.1 and crit["measured_b_crit"] == pytest.approx(32, rel=1e-2)
    lo, hi = crit["measured_b_crit_ci95"]
    assert lo <= crit["measured_b_crit"] <= hi
    values = [30 + 4 * seed + bs / 8 for bs in (8, 16, 32, 64) for seed in (0, 1)]
    assert crit["predicted_b_simple"] == pytest.approx(float(np.median(values)))
    lo, hi = crit["predicted_b_simple_ci95"]
    assert min(values) <= lo <= crit["predicted_b_simple"] <= hi <= max(values)
    hit = crit["b_simple_at_target"]["16"][1]  # seed 1 crosses at 165: the first track point at or after is 200
    assert (hit["step"], hit["b_simple"]) == (200, 36.0)
    paths = report.save(tmp_path)  # report_tracks.png too, with the nulls
    assert paths["tracks"].exists() and paths["critical_batch"].exists() and "![](report_critical_batch.png)" in paths["markdown"].read_text()
    # what is missing is said, in the JSON and the tables
    never = build_report(scaling_runs, [], progress=False, target_error=0.01)
    assert "no batch size(s) reached test error < 0.01" in never.to_dict()["critical_batch"]["absent"]
    assert "not drawn: no batch size(s) reached" in never.format_table()
    assert "critical_batch" not in never.save(tmp_path / "never")
