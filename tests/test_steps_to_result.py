import math

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.steps_to_result import (classify_regimes, first_crossing, fit_scaling, loglog_slopes,
                                       steps_to_result)


def _curve(errors, every, time_per_step):
    return [{"step": every * (i + 1), "test_error": e, "train_time": every * (i + 1) * time_per_step}
            for i, e in enumerate(errors)]


@pytest.fixture
def measurements():
    """Synthetic sweep records: 2 batch sizes x 2 learning rates x 2 seeds (+ one that never gets there)."""
    def rec(bs, lr, seed, errors, every, tps=0.01, wd=0.0):
        return {"name": f"bs{bs}_lr{lr}_s{seed}", "curve": _curve(errors, every, tps),
                "config": {"batch_size": bs, "base_lr": lr, "seed": seed, "weight_decay": wd}}
    return [
        # batch 32, lr 0.1: seed 0 first < 0.2 at the 3rd point (step 30); seed 1 at the 4th (40)
        rec(32, 0.1, 0, [0.5, 0.3, 0.19, 0.1], 10),
        rec(32, 0.1, 1, [0.5, 0.3, 0.25, 0.15], 10),
        # batch 32, lr 0.3: seed 0 at step 20 (better than 30), seed 1 never (0.2 is not < 0.2)
        rec(32, 0.3, 0, [0.4, 0.18, 0.1, 0.1], 10),
        rec(32, 0.3, 1, [0.4, 0.2, 0.2, 0.2], 10),
        # batch 128, lr 0.1: seed 0 at step 15, seed 1 at step 20; lr 0.3 diverged (NaN error)
        rec(128, 0.1, 0, [0.6, 0.3, 0.1], 5, tps=0.03),
        rec(128, 0.1, 1, [0.6, 0.3, 0.25, 0.1], 5, tps=0.03),
        rec(128, 0.3, 0, [float("nan")] * 4, 5),
        rec(128, 0.3, 1, [None] * 4, 5),
        # batch 512: never reaches the target
        rec(512, 0.1, 0, [0.5, 0.4], 2),
    ]


def test_first_crossing_is_strict_and_ordered():
    curve = [{"step": 20, "test_error": 0.1, "train_time": 2.0}, {"step": 10, "test_error": 0.2, "train_time": 1.0}]
    assert first_crossing(curve, 0.2) == (20, 2.0)
    assert first_crossing(curve, 0.25) == (10, 1.0)
    assert first_crossing(curve, 0.05) is None


def test_steps_to_result_matches_hand_computation(measurements):
    rows = {r.batch_size: r for r in steps_to_result(measurements, target=0.2)}
    # batch 32: seed 0 best over lr = min(30, 20) = 20 (lr 0.3); seed 1 = min(40, never) = 40 (lr 0.1)
    assert rows[32].per_seed == {0: 20, 1: 40}
    assert rows[32].steps == 30  # median of 20 and 40
    assert rows[32].time == pytest.approx((20 * 0.01 + 40 * 0.01) / 2)
    # batch 128: seed 0 -> 15, seed 1 -> 20 (lr 0.1 both; lr 0.3 diverged)
    assert rows[128].per_seed == {0: 15, 1: 20} and rows[128].steps == 17.5 and rows[128].lr == 0.1
    assert rows[128].time == pytest.approx((15 + 20) / 2 * 0.03)
    assert rows[512].steps is None and not rows[512].reached
    assert all(r.group == {"weight_decay": 0.0} for r in rows.values())


def test_regimes_and_fit_on_an_exact_scaling_curve():
    b = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 2048])
    s = 100 * (1 + 64 / b)  # s_min 100, b_crit 64
    fit = fit_scaling(b, s)
    assert fit.s_min == pytest.approx(100, rel=1e-6) and fit.b_crit == pytest.approx(64, rel=1e-6)
    assert fit.rms_log_residual < 1e-8
    # by hand: slope between 8 and 16 = log2(500 / 900) = -0.848; between 1024 and 2048 = log2(103.125 / 106.25)
    slopes = loglog_slopes(b, s)
    assert slopes[0] == pytest.approx(math.log2(500 / 900))
    assert slopes[-1] == pytest.approx(math.log2(103.125 / 106.25))
    regimes = [r[3] for r in classify_regimes(b, s)]
    assert regimes[0] == "perfect scaling" and regimes[-1] == "maximal data parallelism"
    assert "diminishing returns" in regimes
    # model regimes: perfect below b_crit/3, maximal above 3 b_crit
    lo, hi = fit.regime_bounds()
    assert lo == pytest.approx(64 / 3) and hi == pytest.approx(192)
    assert fit.regime(8) == "perfect scaling" and fit.regime(1000) == "maximal data parallelism"
    assert fit.regime(64) == "diminishing returns"


def test_perfect_scaling_only_is_slope_minus_one():
    b = [16, 32, 64]
    assert loglog_slopes(b, [400, 200, 100]) == pytest.approx([-1, -1])
    with pytest.raises(LandscapeError, match="two batch sizes"):
        fit_scaling([16, 32], [100, float("nan")])
