"""Figure recipes: the registry, both scales' plans, and one cheap recipe end to end at a tiny scale."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.figures import DEMO, FIGURES, PAPER, get_scale, list_figures, make_figures, resolve_names
from landscape.figures.context import scaling_plan, study_plan
from landscape.figures.scales import Scale, ScalingSettings, StudySettings

from conftest import run_cli

EXPECTED = ["li_fig3", "interpolation", "keskar_table", "hessian_vs_batch", "steps_to_result", "golmant", "trajectory",
            "lm_scaling", "edge_of_stability", "critical_batch"]


def test_registry_lists_every_figure_in_order():
    from landscape.cli.figures import NAMES

    assert list_figures() == EXPECTED == list(NAMES)
    assert all(FIGURES[n].title and callable(FIGURES[n].make) for n in EXPECTED)
    assert resolve_names(None) == EXPECTED
    assert resolve_names(["golmant", "li_fig3", "golmant"]) == ["golmant", "li_fig3"]
    with pytest.raises(LandscapeError, match="unknown figure 'fig9'"):
        resolve_names(["fig9"])
    with pytest.raises(LandscapeError, match="unknown scale"):
        get_scale("huge")


def test_paper_scale_plans_the_published_setting():
    runs = study_plan(PAPER, n_train=50_000)
    assert {(c.model, c.dataset, c.lr, c.momentum, c.schedule) for c in runs} == {("vgg9", "cifar10", 0.1, 0.9, "step")}
    assert {c.batch_size for c in runs} >= {128, 8192} and {c.weight_decay for c in runs} == {0.0, 5e-4}
    by_bs = {c.batch_size: c for c in runs}
    assert by_bs[128].steps == 300 * (50_000 // 128) and by_bs[8192].steps == 300 * (50_000 // 8192)
    assert PAPER.study.small == 128 and PAPER.study.large == 8192
    assert PAPER.keskar_eps == (1e-3, 5e-4) and PAPER.keskar_subspace == 100 and PAPER.keskar_max_iter == 10
    grid = scaling_plan(PAPER, n_train=50_000)
    assert len(grid) == len(PAPER.scaling.batch_sizes) * len(PAPER.scaling.lrs) * len(PAPER.scaling.seeds)
    assert {c.steps for c in grid} == {PAPER.scaling.steps} and {c.budget for c in grid} == {"steps"}
    # the demo keeps the same design on built-in data
    demo = study_plan(DEMO, n_train=1437)
    assert {c.dataset for c in demo} == {"digits"} and {DEMO.study.small, DEMO.study.large} <= {c.batch_size for c in demo}


def test_paper_scale_without_data_says_where_the_files_go(tmp_path):
    with pytest.raises(LandscapeError, match="--data-root"):
        make_figures(["steps_to_result"], "paper", tmp_path / "f", cache=tmp_path / "c", progress=False)
    res = run_cli("figures", "li_fig3", "--scale", "paper", "--out", str(tmp_path / "f"), "--cache", str(tmp_path / "c"))
    assert res.returncode == 2 and "--data-root" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("figures", "fig9")
    assert res.returncode == 2 and "unknown figure" in res.stderr
    listed = run_cli("figures", "--list")
    assert listed.returncode == 0 and all(name in listed.stdout for name in EXPECTED)


def test_list_writes_nothing_so_any_out_will_do(tmp_path, capsys):
    from landscape.cli import main

    taken = tmp_path / "taken"
    taken.write_text("a file")
    for out in (taken, taken / "figures", tmp_path / "new"):
        assert main(["figures", "--list", "--out", str(out), "--cache", str(out / "cache")]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in listed] == EXPECTED
    assert taken.read_text() == "a file" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


TINY = Scale(
    name="tiny",
    study=StudySettings(model="mlp", dataset="digits", model_args={"hidden": [8]}, batch_sizes=(64, 256), small=64,
                        large=256, seeds=(0,), epochs=2, snapshot_every=1),
    scaling=ScalingSettings(model="mlp", dataset="digits", model_args={"hidden": [8]}, batch_sizes=(32, 64, 128),
                            lrs=(0.1, 0.3), seeds=(0, 1), steps=40, target_error=0.6, eval_every=2),
    threads=1)


def test_steps_to_result_recipe_at_a_tiny_scale(tmp_path):
    out, cache = tmp_path / "figures", tmp_path / "cache"
    result = make_figures(["steps_to_result"], TINY, out, cache=cache, progress=False)["steps_to_result"]
    png = out / "steps_to_result.png"
    assert result.paths == [png] and png.stat().st_size > 20_000
    # brute force from the records: per seed the fewest steps over learning rates, then the median over seeds
    from landscape.sweep import load_records

    records = load_records(cache / "scaling")
    assert len(records) == 3 * 2 * 2
    expected = {}
    for bs in TINY.scaling.batch_sizes:
        per_seed = []
        for seed in TINY.scaling.seeds:
            firsts = [min((p["step"] for p in r["curve"] if p["test_error"] < TINY.scaling.target_error),
                          default=math.inf)
                      for r in records if r["config"]["batch_size"] == bs and r["config"]["seed"] == seed]
            per_seed.append(min(firsts))
        expected[bs] = statistics.median(per_seed)
    got = {row["batch_size"]: row["steps"] for row in result.numbers["rows"]}
    assert got == {bs: v for bs, v in expected.items() if math.isfinite(v)}
    assert result.findings and "segments" in result.findings[0]
    # a second run trains nothing (finished records are kept) and redraws the same numbers
    mtimes = sorted(p.stat().st_mtime_ns for p in (cache / "scaling").glob("*/record.json"))
    again = make_figures(["steps_to_result"], TINY, out, cache=cache, progress=False)["steps_to_result"]
    assert sorted(p.stat().st_mtime_ns for p in (cache / "scaling").glob("*/record.json")) == mtimes
    assert again.numbers["rows"] == result.numbers["rows"]
    summary = (out / "figures_tiny.json").read_text()
    assert "steps_to_result" in summary


def test_within_or_beyond_seed_noise():
    from landscape.figures.keskar_table import _beyond_noise

    assert _beyond_noise([1.0, 1.1, 0.9], [5.0, 5.1, 4.9]) == ", beyond seed noise"
    assert _beyond_noise([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]) == ", within seed noise"
    assert _beyond_noise([1.0], [2.0]) == ""  # one seed: no claim either way


def test_loss_rise_matches_an_analytic_parabola():
    from landscape.figures.common import loss_rise

    x = np.linspace(-1, 1, 201)
    assert loss_rise(x, 3.0 * x ** 2 + 0.1, 0.5) == pytest.approx(0.75, rel=1e-3)


def test_curvature_recipes_at_a_tiny_scale(tmp_path):
    """Tracked runs trained once; B_simple read at each run's first step below the target; both numbers in the JSON."""
    from dataclasses import replace

    from landscape.figures.curvature import b_simple_at_target, bootstrap_b_crit
    from landscape.figures.scales import TrackingSettings

    tiny = replace(TINY, tracking=TrackingSettings(batch_sizes=(32, 128), lr=0.3, steps=20, track_every=10,
                                                   seeds=(0,), samples=64, n_probes=2,
                                                   tuned_lrs={32: 0.3, 64: 0.3, 128: 0.3}))
    out, cache = tmp_path / "figures", tmp_path / "cache"
    res = make_figures(["edge_of_stability", "critical_batch"], tiny, out, cache=cache, progress=False)
    edge, crit = res["edge_of_stability"], res["critical_batch"]
    assert (out / "edge_of_stability.png").exists() and (out / "critical_batch.png").exists()
    assert edge.numbers["edges"] == pytest.approx({"2/lr": 2 / 0.3, "2(1+β)/lr": 2 * 1.9 / 0.3})
    assert set(crit.numbers) >= {"measured_b_crit", "measured_b_crit_ci95", "predicted_b_simple",
                                 "predicted_b_simple_ci95"}
    tuned = sorted((cache / "tuned").iterdir())  # one run per tuned (batch, lr, seed), stopped at the target
    assert [p.name for p in tuned] == ["bs128_lr0.3_s0", "bs32_lr0.3_s0", "bs64_lr0.3_s0"]
    from landscape.jsonfile import read_json

    for bs in (32, 128):
        run = {"track": read_json(cache / "tracked" / f"bs{bs}_s0" / "track.json"),
               "history": read_json(cache / "tracked" / f"bs{bs}_s0" / "history.json")}
        assert [p["step"] for p in run["track"]["points"]] == [0, 10, 20]
        first = next((h["step"] for h in run["history"]["history"] if h["test_error"] < tiny.scaling.target_error), None)
        hit = b_simple_at_target(run, tiny.scaling.target_error)
        if first is None:
            assert hit is None
        else:
            point = next(p for p in run["track"]["points"] if p["step"] >= first)
            assert hit == (point["step"], point["b_simple"], point["b_simple_se"])
    # identical seeds leave nothing to resample: every bootstrap fit is the fit itself
    from landscape.steps_to_result import fit_scaling

    per_seed = {32: [100.0, 100.0], 64: [60.0, 60.0], 128: [45.0, 45.0], 256: [40.0, 40.0]}
    boot = bootstrap_b_crit(per_seed, n_boot=20)
    assert np.allclose(boot, fit_scaling(np.array([32, 64, 128, 256.0]), np.array([100, 60, 45, 40.0])).b_crit)
