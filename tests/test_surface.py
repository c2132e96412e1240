"""Surfaces: values against hand-set weights, grid orientation, files, resume and refusal."""
import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.errors import LandscapeError
from landscape.params import weight_tensors
from landscape.surface import load_surface


def _by_hand(model, directions, a, b, data):
    """Independent reference: copy the model and set w + a*dx + b*dy tensor by tensor."""
    import copy

    m = copy.deepcopy(model)
    live = weight_tensors(m, "weights")
    with torch.no_grad():
        for name, t in live.items():
            t.copy_(t + a * directions[0][name] + b * directions[1][name])
    return landscape.evaluate(m, data)


def test_surface_point_equals_evaluate_of_hand_set_weights(convnet, small_digits):
    train, test = small_digits
    dirs = landscape.random_directions(convnet, n=2, seed=1)
    x, y = np.array([-0.5, 0.0, 0.75]), np.array([-1.0, 0.25])
    before = {k: v.clone() for k, v in convnet.state_dict().items()}
    s = landscape.compute_surface(convnet, dirs, {"train": train, "test": test}, x, y, progress=False)
    assert s["train_loss"].shape == (2, 3) and s.done.all()
    for j, b in enumerate(y):
        for i, a in enumerate(x):
            loss, acc = _by_hand(convnet, dirs, a, b, test)
            assert s["test_loss"][j, i] == pytest.approx(loss, rel=1e-5)
            assert s["test_acc"][j, i] == pytest.approx(acc)
    after = convnet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights must be restored exactly"


def test_non_square_grid_orientation(tmp_path):
    """A loss with its minimum at a known (x, y) off the diagonal must land at value[j, i]."""
    torch.manual_seed(0)
    model = landscape.build_model("mlp", input_shape=(2,), num_classes=1, hidden=())
    inputs, targets = torch.randn(64, 2), torch.randn(64, 1)
    w0 = {n: t.clone() for n, t in weight_tensors(model).items()}
    dx = {n: torch.zeros_like(t) for n, t in w0.items()}
    dy = {n: torch.zeros_like(t) for n, t in w0.items()}
    dx["net.1.bias"] = torch.ones(1)     # x moves the bias
    dy["net.1.weight"] = torch.tensor([[1.0, 0.0]])  # y moves the first weight
    # best (first weight, bias) by least squares with the second weight held fixed, as grid offsets
    residual = targets - w0["net.1.weight"][0, 1] * inputs[:, 1:2]
    A = torch.cat([inputs[:, :1], torch.ones(64, 1)], 1)
    sol = torch.linalg.lstsq(A, residual).solution.squeeze()
    x_star = float(sol[1] - w0["net.1.bias"][0])
    y_star = float(sol[0] - w0["net.1.weight"][0, 0])
    x = np.linspace(x_star - 1, x_star + 2, 31)   # 31 columns
    y = np.linspace(y_star - 0.5, y_star + 0.5, 11)  # 11 rows
    s = landscape.compute_surface(model, [dx, dy], (inputs, targets), x, y, out=tmp_path / "s.h5",
                                  loss="mse", progress=False)
    loss = s["train_loss"]
    assert loss.shape == (11, 31)
    j, i = np.unravel_index(np.argmin(loss), loss.shape)
    assert abs(x[i] - x_star) < 0.05 and abs(y[j] - y_star) < 0.05
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["train_loss"].shape == (11, 31)
        assert np.array_equal(f["xcoordinates"][()], x) and np.array_equal(f["ycoordinates"][()], y)
        assert f["done"][()].all()


def test_1d_surface_includes_zero_and_matches_evaluate(convnet, small_digits):
    train, _ = small_digits
    (d,) = landscape.random_directions(convnet, n=1)
    s = landscape.compute_surface(convnet, [d], train, np.linspace(-1, 1, 5), progress=False)
    assert s.ndim == 1 and s["train_loss"].shape == (5,)
    assert s["train_loss"][2] == pytest.approx(landscape.evaluate(convnet, train)[0], rel=1e-6)


def test_fixed_subset_is_recorded_and_reused(tmp_path, convnet, small_digits):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=1)
    s = landscape.compute_surface(convnet, dirs, train, [0.0, 0.5], out=tmp_path / "s.h5", samples=50,
                                  progress=False)
    with h5py.File(tmp_path / "s.h5") as f:
        idx = f["train_subset"][()]
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    expect = landscape.evaluate(convnet, (train[0][idx], train[1][idx]))[0]
    assert s["train_loss"][0] == pytest.approx(expect, rel=1e-6)


def test_resume_computes_only_missing_and_refuses_mismatch(tmp_path, convnet, small_digits):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=2)
    x, y = np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)
    full = landscape.compute_surface(convnet, dirs, train, x, y, progress=False)
    path = tmp_path / "s.h5"
    calls = []
    landscape.compute_surface(convnet, dirs, train, x, y, out=path, progress=False)
    with h5py.File(path, "a") as f:  # forget half the points
        done = f["done"][()]
        done.reshape(-1)[::2] = False
        f["done"][...] = done
    landscape.compute_surface(convnet, dirs, train, x, y, out=path, progress=False,
                              extra=[lambda m: calls.append(1) or {}])
    assert len(calls) == 6
    again = load_surface(path)
    assert np.array_equal(again["train_loss"], full["train_loss"])
    other = landscape.random_directions(convnet, n=2, seed=5)
    with pytest.raises(LandscapeError, match="directions"):
        landscape.compute_surface(convnet, other, train, x, y, out=path, progress=False)
    with pytest.raises(LandscapeError, match="different grid"):
        landscape.compute_surface(convnet, dirs, train, x, np.linspace(-1, 1, 5), out=path, progress=False)


def test_rtol_points_within_three_standard_errors():
    """Adaptive precision against the full-data value at every point."""
    data = landscape.get_dataset("mnist1d", "train")
    torch.manual_seed(0)
    model = landscape.build_model("mlp", input_shape=(1, 40), hidden=(32,))
    dirs = landscape.random_directions(model, n=2, seed=0)
    x = y = np.linspace(-1, 1, 5)
    full = landscape.compute_surface(model, dirs, data, x, y, progress=False)
    fast = landscape.compute_surface(model, dirs, data, x, y, rtol=0.02, progress=False)
    err = np.abs(fast["train_loss"] - full["train_loss"])
    se = fast["train_loss_se"]
    assert np.all(err <= 3 * se + 1e-12)
    assert fast["train_samples"].sum() < full["train_loss"].size * len(data)  # it did stop early


def test_channels_last_layout_same_values_and_model_handed_back(convnet, small_digits):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=2, seed=2)
    before = {k: v.clone() for k, v in convnet.state_dict().items()}
    x = y = np.linspace(-0.5, 0.5, 3)
    a = landscape.compute_surface(convnet, dirs, train, x, y, progress=False)
    b = landscape.compute_surface(convnet, dirs, train, x, y, layout="channels_last", progress=False)
    assert np.allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
    for k, v in convnet.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous(), k
    with pytest.raises(LandscapeError, match="layout"):
        landscape.compute_surface(convnet, dirs, train, x, y, layout="nhwc", progress=False)


class _Measure:
    """An extra per-point measure with settings, like the Hessian extremes of ``--eig``."""

    def __init__(self, **settings):
        self.fingerprint = settings

    def __call__(self, model):
        return {"m": 1.0}


def test_extra_measure_settings_are_checked_on_resume(tmp_path, convnet, small_digits):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=1)
    x, path = np.linspace(-1, 1, 3), tmp_path / "s.h5"
    landscape.compute_surface(convnet, dirs, train, x, out=path, extra=[_Measure(m_tol=0.1)], progress=False)
    assert load_surface(path).attrs["m_tol"] == 0.1
    landscape.compute_surface(convnet, dirs, train, x, out=path, extra=[_Measure(m_tol=0.1)], progress=False)
    with pytest.raises(LandscapeError, match="m_tol=0.1, this command asks for m_tol=0.2"):
        landscape.compute_surface(convnet, dirs, train, x, out=path, extra=[_Measure(m_tol=0.2)], progress=False)
    with pytest.raises(LandscapeError, match="m_tol=0.1, this command asks for m_tol=none"):  # measure left out
        landscape.compute_surface(convnet, dirs, train, x, out=path, progress=False)
    plain = tmp_path / "plain.h5"
    landscape.compute_surface(convnet, dirs, train, x, out=plain, progress=False)
    with pytest.raises(LandscapeError, match="m_tol=none, this command asks for m_tol=0.1"):  # measure added
        landscape.compute_surface(convnet, dirs, train, x, out=plain, extra=[_Measure(m_tol=0.1)], progress=False)


def _bn_convnet():
    """The digits convnet with non-trivial BatchNorm statistics (folding then changes every weight)."""
    torch.manual_seed(0)
    model = landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.normal_(1, 0.3, generator=g)
                m.bias.normal_(0, 0.3, generator=g)
    return model


@pytest.mark.parametrize("kind, layout, rtol", [("weights", "contiguous", None), ("states", "channels_last", None),
                                                ("weights", "channels_last", 0.05)])
def test_fold_bn_agrees_with_unfolded_extras_get_the_model_and_it_comes_back(small_digits, kind, layout, rtol):
    train, _ = small_digits
    model = _bn_convnet()
    dirs = landscape.random_directions(model, n=2, kind=kind, seed=4, ignore="none")  # states: BN statistics move
    x, y = np.linspace(-1, 1, 3), np.linspace(-0.5, 0.5, 2)
    modules = list(model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    common = dict(kind=kind, layout=layout, rtol=rtol, min_samples=64, batch_size=64, progress=False)
    off = landscape.compute_surface(model, dirs, train, x, y, fold_bn=False, **common)
    auto = landscape.compute_surface(model, dirs, train, x, y, extra=[lambda m: seen.append(m) or {}], **common)
    assert (off.attrs["fold_bn"], auto.attrs["fold_bn"]) == (0, 3)
    assert np.allclose(auto["train_loss"], off["train_loss"], rtol=1e-5, atol=0)
    assert np.array_equal(auto["train_acc"], off["train_acc"])
    assert all(m is model for m in seen) and len(seen) == auto.done.size
    assert list(model.modules()) == modules and all(a is b for a, b in zip(model.modules(), modules))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous(), k


class _Untraceable(torch.nn.Module):
    """Data-dependent Python control flow: torch.fx cannot trace it, so nothing is folded."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 36, 10)

    def forward(self, x):
        if x.sum() > 0:
            x = x * 0.5
        return self.fc(self.bn(self.conv(x)).flatten(1))


def test_fold_bn_auto_falls_back_on_untraceable_models_and_on_refuses(small_digits):
    train, _ = small_digits
    torch.manual_seed(0)
    model = _Untraceable().eval()
    dirs = landscape.random_directions(model, n=1)
    x = np.linspace(-1, 1, 3)
    auto = landscape.compute_surface(model, dirs, train, x, progress=False)
    off = landscape.compute_surface(model, dirs, train, x, fold_bn=False, progress=False)
    assert auto.attrs["fold_bn"] == 0 and np.array_equal(auto["train_loss"], off["train_loss"])
    with pytest.raises(LandscapeError, match="cannot be folded: torch.fx cannot trace _Untraceable") as e:
        landscape.compute_surface(model, dirs, train, x, fold_bn=True, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(LandscapeError, match="fold_bn must be"):
        landscape.compute_surface(model, dirs, train, x, fold_bn="yes", progress=False)


def test_resume_with_other_fold_bn_is_refused(tmp_path, small_digits):
    train, _ = small_digits
    model = _bn_convnet()
    dirs = landscape.random_directions(model, n=1)
    x, path = np.linspace(-1, 1, 3), tmp_path / "s.h5"
    landscape.compute_surface(model, dirs, train, x, out=path, progress=False)
    assert load_surface(path).attrs["fold_bn"] == 3
    with pytest.raises(LandscapeError, match="fold_bn=3, this command asks for fold_bn=0"):
        landscape.compute_surface(model, dirs, train, x, out=path, fold_bn=False, progress=False)
    plain = tmp_path / "plain.h5"
    landscape.compute_surface(model, dirs, train, x, out=plain, fold_bn=False, progress=False)
    with pytest.raises(LandscapeError, match="fold_bn=0, this command asks for fold_bn=3"):
        landscape.compute_surface(model, dirs, train, x, out=plain, progress=False)
    with h5py.File(plain, "a") as f:  # a file from before fold_bn was recorded was computed unfolded
        del f.attrs["fold_bn"]
    landscape.compute_surface(model, dirs, train, x, out=plain, fold_bn=False, progress=False)


def test_accuracy_is_percent_in_the_file_as_the_older_plotters_read_it(tmp_path, convnet, small_digits):
    """plot_1D.py reads f['train_acc'] onto a 0-100 axis and draws 100 - train_acc as the error."""
    train, test = small_digits
    dirs = landscape.random_directions(convnet, n=1, seed=3)
    x, path = np.linspace(-1, 1, 5), tmp_path / "s.h5"
    s = landscape.compute_surface(convnet, dirs, {"train": train, "test": test}, x, out=path, progress=False)
    centre = landscape.evaluate(convnet, test)[1]
    with h5py.File(path, "r") as f:  # what the older plotters see
        assert f.attrs["acc_unit"] == "percent"
        test_acc, train_loss = f["test_acc"][:], f["train_loss"][:]
    assert test_acc[2] == pytest.approx(100 * centre) and 100 - test_acc[2] == pytest.approx(100 * (1 - centre))
    assert np.allclose(test_acc, 100 * s["test_acc"]) and np.array_equal(train_loss, s["train_loss"])
    assert s["test_acc"][2] == pytest.approx(centre)  # fractions in memory, bit for bit what the file gives back
    back = load_surface(path)
    assert np.array_equal(back["test_acc"], s["test_acc"]) and "acc_unit" not in back.attrs


def test_older_files_read_as_fractions_and_an_old_file_resumes_into_percent(tmp_path, convnet, small_digits):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=2, seed=3)
    x, y = np.linspace(-1, 1, 3), np.linspace(-1, 1, 2)
    full = landscape.compute_surface(convnet, dirs, train, x, y, progress=False)
    old = tmp_path / "old.h5"  # this project's file from before acc_unit: fractions, no attribute
    landscape.compute_surface(convnet, dirs, train, x, y, out=old, progress=False)
    with h5py.File(old, "a") as f:
        f["train_acc"][...] = full["train_acc"]
        del f.attrs["acc_unit"]
        done = f["done"][()]
        done.reshape(-1)[::2] = False
        f["done"][...] = done
    assert np.array_equal(load_surface(old)["train_acc"][done], full["train_acc"][done])
    landscape.compute_surface(convnet, dirs, train, x, y, out=old, progress=False)  # resumed: now percent
    with h5py.File(old, "r") as f:
        assert f.attrs["acc_unit"] == "percent" and np.allclose(f["train_acc"][()], 100 * full["train_acc"])
    assert np.array_equal(load_surface(old)["train_acc"], full["train_acc"])
    theirs = tmp_path / "theirs.h5"  # loss-landscape's own layout: coordinates, losses, percent, no attributes
    with h5py.File(theirs, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f["train_loss"], f["train_acc"] = full["train_loss"], 100 * full["train_acc"]
    assert np.allclose(load_surface(theirs)["train_acc"], full["train_acc"], rtol=1e-15)
