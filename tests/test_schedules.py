import math

import pytest

from landscape.errors import LandscapeError
from landscape.schedules import LRSchedule, scale_lr


def test_scaling_rules_by_hand():
    assert scale_lr(0.1, 512, 128, "none") == pytest.approx(0.1)
    assert scale_lr(0.1, 512, 128, "linear") == pytest.approx(0.4)
    assert scale_lr(0.1, 512, 128, "sqrt") == pytest.approx(0.2)
    assert scale_lr(0.1, 32, 128, "sqrt") == pytest.approx(0.05)
    assert scale_lr(0.1, 32, 128, "linear") == pytest.approx(0.025)
    with pytest.raises(LandscapeError, match="scaling rule"):
        scale_lr(0.1, 32, 128, "cubic")
    with pytest.raises(LandscapeError, match="base batch size"):
        scale_lr(0.1, 32, None, "linear")


def test_linear_warmup_then_constant():
    s = LRSchedule(0.4, total_steps=10, name="constant", warmup_steps=4)
    assert s.values() == pytest.approx([0.1, 0.2, 0.3, 0.4] + [0.4] * 6)


def test_warmup_then_cosine_by_hand():
    s = LRSchedule(1.0, total_steps=6, name="cosine", warmup_steps=2)
    # warmup 0.5, 1.0; then t = 0..3 of T = 4: 0.5 * (1 + cos(pi t / 4))
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]
    assert s.values() == pytest.approx(expected)
    assert s(5) == pytest.approx(0.5 * (1 + math.cos(3 * math.pi / 4)))


def test_step_and_linear_decay_by_hand():
    s = LRSchedule(0.1, total_steps=8, name="step", milestones=(0.5, 0.75), gamma=0.1)
    assert s.values() == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    lin = LRSchedule(2.0, total_steps=4, name="linear")
    assert lin.values() == pytest.approx([2.0, 1.5, 1.0, 0.5])


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="exp"), "unknown lr schedule"),
    (dict(warmup_steps=20), "warmup"),
    (dict(milestones=(1.5,), name="step"), "milestones"),
])
def test_bad_schedules_are_clear_errors(kwargs, match):
    with pytest.raises(LandscapeError, match=match):
        LRSchedule(0.1, total_steps=10, **kwargs)
