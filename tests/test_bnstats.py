"""BatchNorm statistics at moved weights: recompute against update_bn, interpolate's warning, keep, files."""
import copy
import warnings

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.bnstats import StatsRecompute, resolve_bn_stats
from landscape.errors import LandscapeError
from landscape.params import weight_tensors
from landscape.surface import load_surface


def _pair(var_b: float | None = None):
    """Two digits convnets with BatchNorm and different weights and statistics (b's variances ``var_b``)."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8))
        g = torch.Generator().manual_seed(10 + seed)
        with torch.no_grad():
            for bn in m.modules():
                if isinstance(bn, torch.nn.BatchNorm2d):
                    bn.running_mean.normal_(0, 0.3, generator=g)
                    bn.running_var.uniform_(0.5, 2.0, generator=g)
                    if var_b is not None and seed == 1:
                        bn.running_var.fill_(var_b)
                    bn.weight.normal_(1, 0.3, generator=g)
        models.append(m.eval())
    return models


def _at(a, b, alpha):
    """An independent copy of the model at (1 - alpha) a + alpha b, every state tensor set by hand."""
    m = copy.deepcopy(a)
    wa, wb = weight_tensors(a, "states"), weight_tensors(b, "states")
    with torch.no_grad():
        for name, t in weight_tensors(m, "states").items():
            t.copy_((1 - alpha) * wa[name] + alpha * wb[name])
    return m


@pytest.mark.parametrize("fold_bn", [True, False])
def test_recompute_equals_update_bn_from_scratch_on_the_same_batches(small_digits, fold_bn):
    train, _ = small_digits
    a, b = _pair()
    x = np.array([-0.5, 0.0, 0.5, 1.4])
    line = landscape.interpolation_direction(a, b, kind="states")
    s = landscape.compute_surface(a, [line], train, x, kind="states", bn_stats="recompute", fold_bn=fold_bn,
                                  progress=False)
    assert s.attrs["bn_stats"] == "recompute" and s.attrs["bn_samples"] == 200 and s.attrs["bn_batch_size"] == 128
    batches = list(torch.split(train[0], 128))  # 200 samples < 2000: all of them, in order, batches of 128
    for i, alpha in enumerate(x):
        m = _at(a, b, alpha)
        torch.optim.swa_utils.update_bn(batches, m)  # torch's own cumulative re-estimate, in training mode
        loss, acc = landscape.evaluate(m.eval(), train)
        assert s["train_loss"][i] == pytest.approx(loss, rel=1e-5), alpha
        assert s["train_acc"][i] == pytest.approx(acc)
    interp = landscape.compute_surface(a, [line], train, x, kind="states", bn_stats="interpolate", progress=False)
    assert not np.allclose(interp["train_loss"], s["train_loss"], rtol=1e-3)  # the statistics do matter here
    # the model comes back with its own statistics and modes
    for name, t in a.state_dict().items():
        assert torch.equal(t, _pair()[0].state_dict()[name]), name
    assert not any(m.training for m in a.modules())
    assert all(bn.momentum == 0.1 for bn in a.modules() if isinstance(bn, torch.nn.BatchNorm2d))


def test_interpolate_warns_where_an_extrapolated_variance_goes_negative(small_digits):
    train, _ = small_digits
    a, b = _pair(var_b=0.2)  # a's variances are >= 0.5: past alpha = 1.25 some go below zero
    line = landscape.interpolation_direction(a, b, kind="states")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inside [0, 1] nothing is clamped, nothing said
        landscape.compute_surface(a, [line], train, np.array([0.0, 0.5, 1.0]), kind="states",
                                  bn_stats="interpolate", progress=False)
    with pytest.warns(UserWarning, match=r"variance extrapolated below zero at \(2\).*bn_stats='recompute'"):
        landscape.compute_surface(a, [line], train, np.array([0.0, 2.0]), kind="states", bn_stats="interpolate",
                                  progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        landscape.compute_surface(a, [line], train, np.array([0.0, 2.0]), kind="states", bn_stats="recompute",
                                  progress=False)


def test_keep_holds_the_centre_statistics(small_digits):
    train, _ = small_digits
    a, b = _pair()
    line = landscape.interpolation_direction(a, b, kind="states")
    s = landscape.compute_surface(a, [line], train, np.array([0.7]), kind="states", bn_stats="keep", progress=False)
    m = _at(a, b, 0.7)
    m.load_state_dict({k: v for k, v in a.state_dict().items() if "running" in k or "batches" in k}, strict=False)
    assert s["train_loss"][0] == pytest.approx(landscape.evaluate(m, train)[0], rel=1e-5)


def test_auto_and_recorded_modes(small_digits):
    a, b = _pair()
    line = landscape.interpolation_direction(a, b, kind="states")
    weights_only = landscape.random_directions(a, 1)
    assert resolve_bn_stats("auto", a, [line]) == "recompute"
    assert resolve_bn_stats("auto", a, weights_only) == "interpolate"
    assert resolve_bn_stats("keep", a, weights_only) == "interpolate"  # nothing moves them: the same computation
    assert resolve_bn_stats("keep", a, [line]) == "keep"
    mlp = landscape.build_model("mlp", input_shape=(1, 8, 8), num_classes=10)
    assert resolve_bn_stats("recompute", mlp, landscape.random_directions(mlp, 1)) == "interpolate"
    with pytest.raises(LandscapeError, match="bn_stats must be one of"):
        resolve_bn_stats("sometimes", a, [line])
    with pytest.raises(LandscapeError, match="bn_samples must be positive"):
        StatsRecompute(a, small_digits[0], samples=0)


def test_subset_is_seeded_and_resume_with_other_settings_refused(tmp_path, small_digits):
    train, _ = small_digits
    a, b = _pair()
    line = landscape.interpolation_direction(a, b, kind="states")
    x, path = np.linspace(-0.5, 1.5, 3), tmp_path / "line.h5"
    common = dict(kind="states", progress=False)
    s = landscape.compute_surface(a, [line], train, x, out=path, bn_stats="recompute", bn_samples=150, **common)
    again = landscape.compute_surface(a, [line], train, x, bn_stats="recompute", bn_samples=150, **common)
    assert np.array_equal(s["train_loss"], again["train_loss"])  # same seeded subset, same values
    assert s.attrs["bn_samples"] == 150
    with pytest.raises(LandscapeError, match="bn_stats=recompute, this command asks for bn_stats=interpolate"):
        landscape.compute_surface(a, [line], train, x, out=path, bn_stats="interpolate", **common)
    with pytest.raises(LandscapeError, match="bn_samples=150, this command asks for bn_samples=100"):
        landscape.compute_surface(a, [line], train, x, out=path, bn_stats="recompute", bn_samples=100, **common)
    old = tmp_path / "old.h5"
    landscape.compute_surface(a, [line], train, x, out=old, bn_stats="interpolate", **common)
    with h5py.File(old, "a") as f:  # a file from before bn_stats was recorded interpolated the statistics
        del f.attrs["bn_stats"]
    landscape.compute_surface(a, [line], train, x, out=old, bn_stats="interpolate", **common)
    assert load_surface(old).done.all()


class _Stop(Exception):
    pass


def test_interrupted_recompute_surface_resumes_bit_identical(tmp_path, small_digits):
    train, test = small_digits
    a, b = _pair()
    dirs = [landscape.interpolation_direction(a, b, kind="states"), landscape.random_directions(a, 1, kind="states")[0]]
    x, y, path = np.linspace(-0.5, 1.5, 5), np.linspace(-1, 1, 3), tmp_path / "plane.h5"
    common = dict(test_data=test, kind="states", bn_samples=150, progress=False)
    calls = []

    def stop_after_six(model):
        calls.append(1)
        if len(calls) > 6:
            raise _Stop
        return {}
    with pytest.raises(_Stop):
        landscape.compute_surface(a, dirs, train, x, y, out=path, extra=[stop_after_six], **common)
    assert 0 < load_surface(path).done.sum() < 15
    resumed = landscape.compute_surface(a, dirs, train, x, y, out=path, **common)
    whole = landscape.compute_surface(a, dirs, train, x, y, **common)
    assert resumed.attrs["bn_stats"] == "recompute" and resumed.done.all()
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert np.array_equal(resumed[name], whole[name]), name
