"""The language-model-next-to-image steps-to-target figure, end to end at a tiny size, then from its cache."""
from landscape.figures import lm_scaling, make_figures


def test_lm_scaling_recipe_trains_to_the_targets_draws_and_reuses_its_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "data"))
    tiny = (lm_scaling.Workload("gpt-tiny on pysrc", "pysrc", "gpt-tiny", 4.0, 2, 400, lr=1e-2, test_samples=16,
                                model_args={"width": 16, "heads": 2, "depth": 1}),
            lm_scaling.Workload("MLP on digits", "digits", "mlp", 2.0, 4, 2000, model_args={"hidden": [16]}))
    monkeypatch.setattr(lm_scaling, "WORKLOADS", tiny)
    monkeypatch.setattr(lm_scaling, "BATCH_SIZES", (8, 32))
    out, cache = tmp_path / "fig", tmp_path / "cache"
    result = make_figures(["lm_scaling"], "demo", out, cache=cache, progress=False)["lm_scaling"]
    assert (out / "lm_scaling.png").stat().st_size > 5000
    for dataset, target in (("pysrc", 4.0), ("digits", 2.0)):
        runs = result.numbers[dataset]["runs"]
        assert [r["batch_size"] for r in runs] == [8, 32] and all(r["steps"] for r in runs)
        for r in runs:  # stopped at the first evaluation below the target, which is the recorded step
            assert r["curve"][-1][0] == r["steps"] and r["curve"][-1][1] < target
            assert all(loss >= target for _, loss in r["curve"][:-1])

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr("landscape.train.train", no_training)
    again = make_figures(["lm_scaling"], "demo", out, cache=cache, progress=False)["lm_scaling"]
    assert again.numbers == result.numbers
