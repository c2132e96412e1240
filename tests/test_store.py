"""`MeasureStore` from Python: an interrupted trace or density resumes to the uninterrupted result."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import landscape
from landscape import hessian
from landscape.risk import EmpiricalRisk
from landscape.store import MeasureStore


class Stop(Exception):
    pass


def _risk():
    torch.manual_seed(0)
    model = landscape.build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[6]).double()
    d = landscape.get_dataset("digits", "train")
    return EmpiricalRisk(model, (d.inputs[:60], d.targets[:60]), batch_size=25)


def _stop_after(n):
    calls = []

    def hook(*_):
        calls.append(1)
        if len(calls) == n:
            raise Stop

    return hook


@pytest.mark.parametrize("measure", ["trace", "density"])
def test_an_interrupted_run_resumes_from_the_store(tmp_path, measure):
    risk = _risk()
    path = tmp_path / "measures.json"
    if measure == "trace":
        run = lambda **kw: hessian.trace(risk, n_probes=8, seed=2, block_size=4, **kw)  # noqa: E731
        hook, fields, resumed = "on_block", ("value", "stderr"), ("resumed_probes", 4)
    else:
        run = lambda **kw: hessian.density(risk, n_iter=8, n_probes=5, seed=2, block_size=2, **kw)  # noqa: E731
        hook, fields, resumed = "on_run", ("nodes", "weights", "density"), ("resumed_runs", 2)  # runs go two at a time
    whole = run()
    with pytest.raises(Stop):
        run(store=MeasureStore.for_risk(path, risk), **{hook: _stop_after(1 if measure == "trace" else 2)})
    before = risk.n_hvps
    again = run(store=MeasureStore.for_risk(path, risk))  # a new store object: read back from the file
    assert again.settings[resumed[0]] == resumed[1]
    assert 0 < again.n_hvps == risk.n_hvps - before < whole.n_hvps
    for f in fields:
        assert np.allclose(getattr(again, f), getattr(whole, f), rtol=1e-10, atol=1e-12), f
    reused = run(store=MeasureStore.for_risk(path, risk))  # finished: reused without a product
    assert risk.n_hvps == before + again.n_hvps
    assert all(np.allclose(getattr(reused, f), getattr(again, f)) for f in fields)
    other = EmpiricalRisk(risk.model, risk.batches.batches[0].inputs + (risk.batches.batches[0].target,))
    assert MeasureStore.for_risk(path, other).reuse(measure, {}) is None and not MeasureStore.for_risk(path, other).parts


def test_eigenvalues_are_reused_from_the_store_only_for_the_same_request(tmp_path):
    risk = _risk()
    path = tmp_path / "measures.json"
    first = hessian.eigenvalues(risk, k=2, tol=1e-8, store=MeasureStore.for_risk(path, risk))
    before = risk.n_hvps
    store = MeasureStore.for_risk(path, risk)  # read back from the file
    again = hessian.eigenvalues(risk, k=2, tol=1e-8, store=store)
    assert risk.n_hvps == before and store.reused == {"largest_eigenvalues"}
    assert np.array_equal(again.values, first.values) and again.n_hvps == first.n_hvps
    other = hessian.eigenvalues(risk, k=3, tol=1e-8, store=store)  # another request: measured
    assert risk.n_hvps == before + other.n_hvps and np.allclose(other.values[:2], first.values, rtol=1e-7)
    with pytest.raises(landscape.LandscapeError, match="pass store or v0, not both"):
        hessian.eigenvalues(risk, k=1, store=store, v0=torch.ones(risk.num_params))
