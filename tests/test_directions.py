"""Directions: filter normalization checked filter by filter, lines, planes, files, seeding."""
import numpy as np
import pytest
import torch

import landscape
from landscape.directions import load_directions, normalize_direction, save_directions
from landscape.errors import LandscapeError
from landscape.params import dot, weight_tensors


def test_filter_norms_equal_weight_norms_and_zero_where_ignored(convnet):
    (d,) = landscape.random_directions(convnet, n=1, norm="filter", ignore="biasbn", seed=3)
    weights = weight_tensors(convnet, "weights")
    assert list(d) == list(weights)
    for name, w in weights.items():
        if w.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name
            continue
        for i in range(w.shape[0]):  # every filter, by an explicit loop
            assert torch.isclose(d[name][i].norm(), w[i].norm(), rtol=1e-5), (name, i)


def test_layer_norm_and_unit_variants():
    w = torch.randn(6, 3, 3, 3)
    d = torch.randn(6, 3, 3, 3)
    assert torch.isclose(normalize_direction(d, w, "layer").norm(), w.norm(), rtol=1e-6)
    assert torch.allclose(normalize_direction(d, w, "weight"), d * w)
    dfilter = normalize_direction(d, w, "dfilter")
    assert torch.allclose(dfilter.reshape(6, -1).norm(dim=1), torch.ones(6), rtol=1e-5)
    assert torch.isclose(normalize_direction(d, w, "dlayer").norm(), torch.tensor(1.0), rtol=1e-6)
    b = torch.randn(6)
    assert torch.isclose(normalize_direction(torch.randn(6), b, "filter", ignore="none").norm(), b.norm(), rtol=1e-5)


def test_states_kind_includes_bn_statistics_with_zero_direction(convnet):
    (d,) = landscape.random_directions(convnet, n=1, kind="states")
    assert any(name.endswith("running_mean") for name in d)
    assert all(torch.count_nonzero(t) == 0 for name, t in d.items() if "running" in name)
    assert not any(name.endswith("num_batches_tracked") for name in d)


def test_same_directions_whatever_the_seed_path(convnet):
    a = landscape.random_directions(convnet, n=2, seed=7)
    b = landscape.random_directions(convnet, n=2, seed=7)
    c = landscape.random_directions(convnet, n=2, seed=8)
    assert all(torch.equal(a[k][n], b[k][n]) for k in range(2) for n in a[k])
    assert not torch.equal(a[0]["features.0.weight"], c[0]["features.0.weight"])
    assert not torch.equal(a[0]["features.0.weight"], a[1]["features.0.weight"])


def test_orthogonalize(convnet):
    x, y = landscape.random_directions(convnet, n=2, orthogonalize=True)
    assert abs(dot(x, y)) < 1e-6 * np.sqrt(dot(x, x) * dot(y, y))


def test_interpolation_endpoints_reproduce_both_models(small_digits):
    train, _ = small_digits
    torch.manual_seed(1)
    a = landscape.build_model("convnet", channels=(4, 8, 8))
    torch.manual_seed(2)
    b = landscape.build_model("convnet", channels=(4, 8, 8))
    with torch.no_grad():  # different BN statistics too, so kind="states" matters
        for m, v in ((a, 0.3), (b, -0.2)):
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.fill_(v)
    d = landscape.interpolation_direction(a, b, kind="states")
    surf = landscape.compute_surface(a, [d], train, [0.0, 1.0], kind="states", bn_stats="interpolate", progress=False)
    assert surf["train_loss"][0] == pytest.approx(landscape.evaluate(a, train)[0], rel=1e-6)
    assert surf["train_loss"][1] == pytest.approx(landscape.evaluate(b, train)[0], rel=1e-5)


def test_plane_through_three_models():
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(landscape.build_model("mlp", hidden=(5,)))
    dx, dy = landscape.plane_directions(*models, kind="weights")
    wa, wb, wc = (weight_tensors(m) for m in models)
    for n in wa:
        assert torch.allclose(wa[n] + dx[n], wb[n]) and torch.allclose(wa[n] + dy[n], wc[n])


def test_direction_file_round_trip_by_name(tmp_path, convnet):
    dirs = landscape.random_directions(convnet, n=2)
    path = save_directions(tmp_path / "d.h5", dirs, {"norm": "filter", "seed": 0})
    loaded, attrs = load_directions(path, convnet)
    assert attrs["norm"] == "filter"
    import h5py

    with h5py.File(path) as f:
        assert set(f["xdirection"]) == set(dirs[0])  # datasets named by tensor name
    assert all(torch.equal(loaded[k][n], dirs[k][n]) for k in range(2) for n in dirs[k])
    other = landscape.build_model("mlp")
    with pytest.raises(LandscapeError, match="lacks"):
        load_directions(path, other)


def test_bad_norm_is_clear(convnet):
    with pytest.raises(LandscapeError, match="unknown norm"):
        landscape.random_directions(convnet, norm="filterwise")


def test_extrapolated_bn_variance_is_clamped_not_nan(small_digits):
    """Past alpha = 1 a running variance heading down crosses zero; the loss must stay finite."""
    train, _ = small_digits
    torch.manual_seed(1)
    a = landscape.build_model("convnet", channels=(4, 8, 8))
    b = landscape.build_model("convnet", channels=(4, 8, 8))
    with torch.no_grad():
        for mod in a.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.fill_(1.0)
        for mod in b.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.fill_(0.2)
    d = landscape.interpolation_direction(a, b, kind="states")
    s = landscape.compute_surface(a, [d], train, [1.0, 1.5], kind="states", progress=False)
    assert np.all(np.isfinite(s["train_loss"]))  # at 1.5 the raw variance would be 1 - 1.5 * 0.8 = -0.2


def _write_loss_landscape_directions(path, directions):
    """loss-landscape's h5_util.write_list layout: one group per direction, datasets '0', '1', ... in order."""
    import h5py

    with h5py.File(path, "w") as f:
        for group, tensors in zip(("xdirection", "ydirection"), directions):
            g = f.create_group(group)
            for i, t in enumerate(tensors):
                g.create_dataset(str(i), data=t.numpy())


@pytest.mark.parametrize("kind", ["weights", "states"])
def test_loss_landscape_direction_file_round_trips_to_identical_directions(tmp_path, kind):
    model = _bn_model()
    dirs = landscape.random_directions(model, n=2, kind=kind, ignore="none", seed=7)
    if kind == "weights":  # its order: model.parameters()
        order = [n for n, _ in model.named_parameters()]
        lists = [[d[n] for n in order] for d in dirs]
    else:  # its order: every state_dict entry, num_batches_tracked included (a 0-d float there)
        lists = [[d[n] if n in d else torch.zeros(t.shape) for n, t in model.state_dict().items()] for d in dirs]
    _write_loss_landscape_directions(tmp_path / "theirs.h5", lists)
    loaded, attrs = load_directions(tmp_path / "theirs.h5", model)
    assert attrs["kind"] == kind and [list(d) for d in loaded] == [list(d) for d in dirs]
    assert all(torch.equal(loaded[k][n], dirs[k][n]) for k in range(2) for n in dirs[k])


def test_loss_landscape_direction_file_for_another_model_is_refused_with_the_reason(tmp_path):
    model = _bn_model()
    params = [p.detach().clone() for p in model.parameters()]
    _write_loss_landscape_directions(tmp_path / "short.h5", [params[:-1]])
    with pytest.raises(LandscapeError, match=f"{len(params) - 1} unnamed tensors per direction.*"
                                             f"{len(params)} parameters and {len(model.state_dict())} state_dict"):
        load_directions(tmp_path / "short.h5", model)
    with pytest.raises(LandscapeError, match="--kind states asks for its states"):
        _write_loss_landscape_directions(tmp_path / "w.h5", [params])
        load_directions(tmp_path / "w.h5", model, kind="states")
    swapped = [params[1], params[0]] + params[2:]
    _write_loss_landscape_directions(tmp_path / "swapped.h5", [swapped])
    with pytest.raises(LandscapeError, match=r"tensor 0 has shape \(4,\), but weight 0 of this model "
                                             r"\('features.0.weight'\)"):
        load_directions(tmp_path / "swapped.h5", model)


def _bn_model():
    torch.manual_seed(0)
    return landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8))


def test_dir_file_in_loss_landscape_layout_drives_the_cli(tmp_path, small_digits):
    from landscape.cli import main
    from landscape.surface import load_surface

    model = _bn_model()
    ckpt = landscape.save_checkpoint(tmp_path / "m.pt", model, {"dataset": "digits"})
    (d,) = landscape.random_directions(model, n=1, seed=2)
    _write_loss_landscape_directions(tmp_path / "theirs.h5", [[d[n] for n, _ in model.named_parameters()]])
    args = ["surface", "--ckpt", str(ckpt), "--x", "-1:1:3", "--splits", "train", "--no-progress",
            "--layout", "contiguous", "--batch-size", "512", "--fold-bn", "off"]
    assert main(args + ["--dir-file", str(tmp_path / "theirs.h5"), "--out", str(tmp_path / "a")]) == 0
    ours = landscape.save_directions(tmp_path / "ours.h5", [d])
    assert main(args + ["--dir-file", str(ours), "--out", str(tmp_path / "b")]) == 0
    a, b = (load_surface(next((tmp_path / o).glob("*_1d.h5"))) for o in "ab")
    assert np.array_equal(a["train_loss"], b["train_loss"]) and a.attrs["directions"] == b.attrs["directions"]


def test_ignore_none_bias_dir_weights_is_the_older_tools_behaviour(convnet):
    """loss-landscape sets the direction of every 1-D tensor to the tensor itself; the rest is unchanged."""
    weights = weight_tensors(convnet, "weights")
    (random_bias,) = landscape.random_directions(convnet, n=1, ignore="none", seed=5)
    (older,) = landscape.random_directions(convnet, n=1, ignore="none", bias_dir="weights", seed=5)
    for name, w in weights.items():
        if w.dim() <= 1:
            assert torch.equal(older[name], w), name
            assert torch.isclose(random_bias[name].norm(), w.norm(), rtol=1e-5)
            assert w.norm() == 0 or not torch.equal(random_bias[name], w), name  # BN biases start at zero
        else:
            assert torch.equal(older[name], random_bias[name]), name
    with pytest.raises(LandscapeError, match="bias_dir='weights' applies only with ignore='none'"):
        landscape.random_directions(convnet, n=1, bias_dir="weights")
    with pytest.raises(LandscapeError, match="unknown bias_dir"):
        landscape.random_directions(convnet, n=1, ignore="none", bias_dir="zero")


def test_bias_dir_is_recorded_in_the_direction_file_and_the_surface_fingerprint(tmp_path, capsys):
    import h5py

    from landscape.cli import main

    ckpt = landscape.save_checkpoint(tmp_path / "m.pt", _bn_model(), {"dataset": "digits"})
    args = ["surface", "--ckpt", str(ckpt), "--x", "-1:1:3", "--splits", "train", "--no-progress", "--layout",
            "contiguous", "--batch-size", "512", "--fold-bn", "off", "--ignore", "none", "--out", str(tmp_path / "o")]
    assert main(args + ["--bias-dir", "weights"]) == 0
    with h5py.File(tmp_path / "o" / "random_1d_directions.h5") as f:
        assert f.attrs["bias_dir"] == "weights" and f.attrs["ignore"] == "none"
    with h5py.File(tmp_path / "o" / "random_1d.h5") as f:
        assert f.attrs["bias_dir"] == "weights" and "bias_dir" in f.attrs["fingerprint_keys"]
    assert main(args) == 2  # the default (random) is another surface: refused, not mixed
    assert "was computed with" in capsys.readouterr().err
