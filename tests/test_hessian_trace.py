"""Hutchinson and Hutch++ trace estimates against the exact trace of tiny models' Hessians."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hessian_cases import HVP_BATCH, case
from landscape.errors import LandscapeError
from landscape.hessian import HessianOperator, hutch_plus_plus, hutchinson, trace


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_hutchinson_within_three_standard_errors_over_fixed_seeds(name):
    """40 probes: the conv net's per-probe spread is heavy-tailed (one dominant eigenvalue), and
    with 20 probes the sample standard error under-covers (3.5% misses over 200 seeds)."""
    model, data, H, _ = case(name)
    exact = float(torch.trace(H))
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    for seed in range(3):
        res = trace(model, op, n_probes=40, seed=seed)
        assert res.n_hvps == 40 and res.stderr > 0
        assert abs(res.value - exact) <= 3 * res.stderr, (seed, res.value, exact, res.stderr)
        assert res.settings["method"] == "hutchinson" and res.settings["n_probes"] == 40


def test_standard_error_is_the_spread_of_the_probes():
    A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64)) + 0.3
    est = hutchinson(lambda v: A @ v, 10, n_probes=50, seed=0)
    assert est.stderr == pytest.approx(est.samples.std(ddof=1) / np.sqrt(50))
    assert est.value == pytest.approx(est.samples.mean())


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_hutch_plus_plus_is_closer_than_hutchinson_at_equal_products(name):
    """Over ten fixed seeds at 30 products each, on the real spectrum of the tiny models."""
    _, _, H, _ = case(name)
    exact = float(torch.trace(H))
    n = H.shape[0]
    err_h = [hutchinson(lambda v: H @ v, n, 30, seed=s).value - exact for s in range(10)]
    err_pp = [hutch_plus_plus(lambda v: H @ v, n, 30, seed=s).value - exact for s in range(10)]
    rms_h, rms_pp = np.sqrt(np.mean(np.square(err_h))), np.sqrt(np.mean(np.square(err_pp)))
    assert rms_pp < rms_h, (rms_pp, rms_h)


def test_hutch_plus_plus_through_the_model_and_exact_on_low_rank():
    model, data, H, _ = case("mlp")
    exact = float(torch.trace(H))
    res = trace(model, data, n_probes=30, method="hutch++", batch_size=HVP_BATCH, seed=0)
    assert res.n_hvps == 30
    assert abs(res.value - exact) <= 4 * res.stderr
    # rank-3 PSD matrix: the sketch captures it all, the estimate is exact
    g = torch.Generator().manual_seed(0)
    U = torch.randn(50, 3, generator=g, dtype=torch.float64)
    A = U @ U.T
    est = hutch_plus_plus(lambda v: A @ v, 50, 12, seed=1)
    assert est.value == pytest.approx(float(torch.trace(A)), rel=1e-10)


def test_weight_decay_adds_wd_times_p_to_the_trace():
    model, data, _, ev = case("mlp")
    wd = 0.01
    plain = trace(model, data, n_probes=10, batch_size=HVP_BATCH, seed=4)
    decayed = trace(model, data, n_probes=10, batch_size=HVP_BATCH, seed=4, weight_decay=wd)
    # Rademacher probes have z.z = P exactly, so the shift is exact probe by probe.
    assert decayed.value - plain.value == pytest.approx(wd * len(ev), rel=1e-10)
    assert decayed.stderr == pytest.approx(plain.stderr, rel=1e-8)
    assert decayed.settings["weight_decay_included"] is True


def test_trace_argument_errors():
    model, data, _, _ = case("mlp")
    with pytest.raises(LandscapeError, match="method"):
        trace(model, data, method="exact")
    with pytest.raises(LandscapeError, match="at least 3"):
        trace(model, data, n_probes=2, method="hutch++")


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_blocked_probes_give_the_per_vector_estimate(method):
    """Same seed, same probes: block sizes (including ragged last blocks) change only rounding."""
    model, data, H, _ = case("convnet_bn")
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    est = hutchinson if method == "hutchinson" else hutch_plus_plus
    single = est(op.mv, op.num_params, 14, seed=3)   # one matvec per probe, no matmat
    for block in (1, 4, 16):
        before = op.n_hvps
        res = trace(model, op, n_probes=14, method=method, seed=3, block_size=block)
        assert res.n_hvps == op.n_hvps - before == 14
        assert res.value == pytest.approx(single.value, rel=1e-10)
        assert res.stderr == pytest.approx(single.stderr, rel=1e-8)
    with pytest.raises(LandscapeError, match="block_size"):
        trace(model, op, n_probes=4, method=method, block_size=0)


def test_resumed_hutchinson_uses_the_same_probes_as_an_uninterrupted_run():
    model, data, _, _ = case("mlp")
    trace_fn = trace
    full = trace_fn(model, data, n_probes=20, batch_size=HVP_BATCH, seed=5, block_size=8)
    seen = []

    def stop_after_eight(samples):
        seen.append(samples)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trace_fn(model, data, n_probes=20, batch_size=HVP_BATCH, seed=5, block_size=8, on_block=stop_after_eight)
    assert len(seen[0]) == 8
    resumed = trace_fn(model, data, n_probes=20, batch_size=HVP_BATCH, seed=5, block_size=3, done=seen[0])
    assert resumed.n_hvps == 12 and resumed.settings["resumed_probes"] == 8
    assert resumed.value == pytest.approx(full.value, rel=1e-10) and resumed.stderr == pytest.approx(full.stderr, rel=1e-8)
    with pytest.raises(Exception, match="only the Hutchinson"):
        trace_fn(model, data, n_probes=20, method="hutch++", batch_size=HVP_BATCH, done=seen[0])
