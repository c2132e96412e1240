"""Model registry: published parameter counts, shape checks, clear errors."""
import pytest
import torch

import landscape
from landscape.errors import LandscapeError


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_resnet20_has_the_published_parameter_count():
    assert count(landscape.build_model("resnet20", num_classes=10)) == 272_474


@pytest.mark.parametrize("name", ["resnet56", "resnet56_noshort", "vgg9", "vgg9_gap"])
def test_cifar_models_run(name):
    m = landscape.build_model(name, num_classes=10).eval()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_noshort_differs_only_by_shortcuts():
    a, b = landscape.build_model("resnet20"), landscape.build_model("resnet20_noshort")
    assert count(a) - count(b) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_convnet_adapts_to_1d_and_2d_inputs():
    m2 = landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10).eval()
    m1 = landscape.build_model("convnet", input_shape=(1, 40), num_classes=10).eval()
    assert m2(torch.randn(3, 1, 8, 8)).shape == (3, 10) and m1(torch.randn(3, 1, 40)).shape == (3, 10)


def test_input_shape_mismatch_is_clear():
    m = landscape.build_model("convnet", input_shape=(1, 8, 8))
    with pytest.raises(LandscapeError, match="built for inputs of shape"):
        m(torch.randn(2, 1, 40))


def test_unknown_model_and_argument():
    with pytest.raises(LandscapeError, match="unknown model"):
        landscape.build_model("resnet9000")
    with pytest.raises(LandscapeError, match="takes no argument"):
        landscape.build_model("mlp", depth=3)


# ---- the older tool's architectures (tomgoldstein/loss-landscape), from their documented layer structure
def _bn(prefix, c):
    return [(f"{prefix}.{k}", (c,)) for k in ("weight", "bias", "running_mean", "running_var")] + \
        [(f"{prefix}.num_batches_tracked", ())]


def _li_vgg9_layout():
    """Li et al.'s VGG-9: conv3x3+BN+ReLU at 64,64,M,128,128,M,256,256,256,M; fc 4096->256 + BN; 256->10."""
    out, c_in, i = [], 3, 0
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]:
        if v == "M":
            i += 1
            continue
        out += [(f"features.{i}.weight", (v, c_in, 3, 3)), (f"features.{i}.bias", (v,))] + _bn(f"features.{i + 1}", v)
        c_in, i = v, i + 3
    return out + [("fc.0.weight", (256, 4096)), ("fc.0.bias", (256,))] + _bn("fc.1", 256) + \
        [("classifier.weight", (10, 256)), ("classifier.bias", (10,))]


def _cifar_resnet_layout(depth, k=1, shortcut=True):
    """conv1, bn1, three stages of (depth-2)/6 basic blocks at 16k/32k/64k channels, 1x1 projections, linear."""
    n = (depth - 2) // 6
    return _basic_resnet_layout([16 * k, 32 * k, 64 * k], [n, n, n], shortcut)


def _basic_resnet_layout(widths, blocks, shortcut=True):
    """Stem conv to widths[0] + BN; per stage, basic blocks (two 3x3 convs with BN), 1x1+BN projections; linear."""
    out, c_in = [("conv1.weight", (widths[0], 3, 3, 3))] + _bn("bn1", widths[0]), widths[0]
    for s, (c, n) in enumerate(zip(widths, blocks), start=1):
        for i in range(n):
            p = f"layer{s}.{i}"
            out += [(f"{p}.conv1.weight", (c, c_in, 3, 3))] + _bn(f"{p}.bn1", c) + \
                [(f"{p}.conv2.weight", (c, c, 3, 3))] + _bn(f"{p}.bn2", c)
            if shortcut and c_in != c:
                out += [(f"{p}.shortcut.0.weight", (c, c_in, 1, 1))] + _bn(f"{p}.shortcut.1", c)
            c_in = c
    return out + [("linear.weight", (10, widths[-1])), ("linear.bias", (10,))]


def _densenet121_layout(growth=32, blocks=(6, 12, 24, 16)):
    """3x3 stem to 2g; bottlenecks bn1, 1x1 conv1 to 4g, bn2, 3x3 conv2 to g; transitions bn + 1x1 conv halving."""
    c = 2 * growth
    out = [("conv1.weight", (c, 3, 3, 3))]
    for b, n in enumerate(blocks, start=1):
        for i in range(n):
            p = f"dense{b}.{i}"
            out += _bn(f"{p}.bn1", c) + [(f"{p}.conv1.weight", (4 * growth, c, 1, 1))] + \
                _bn(f"{p}.bn2", 4 * growth) + [(f"{p}.conv2.weight", (growth, 4 * growth, 3, 3))]
            c += growth
        if b < len(blocks):
            out += _bn(f"trans{b}.bn", c) + [(f"trans{b}.conv.weight", (c // 2, c, 1, 1))]
            c //= 2
    return out + _bn("bn", c) + [("linear.weight", (10, c)), ("linear.bias", (10,))]


@pytest.mark.parametrize("name, layout", [
    ("vgg9", _li_vgg9_layout()), ("resnet20", _cifar_resnet_layout(20)),
    ("resnet56_noshort", _cifar_resnet_layout(56, shortcut=False)), ("resnet110", _cifar_resnet_layout(110)),
    ("wrn56_2", _cifar_resnet_layout(56, k=2)), ("wrn56_2_noshort", _cifar_resnet_layout(56, 2, False)),
    ("densenet121", _densenet121_layout()), ("resnet18", _basic_resnet_layout([64, 128, 256, 512], [2, 2, 2, 2]))])
def test_older_tool_architectures_have_its_state_dict_layout(name, layout):
    """Same keys, shapes and order: its checkpoints load, and its positional direction files map."""
    model = landscape.build_model(name)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == layout


def test_vgg9_is_li_et_al_and_the_wider_one_is_kept():
    assert count(landscape.build_model("vgg9")) == 2_789_706
    assert count(landscape.build_model("vgg9_gap")) == 6_999_562


def _write_cifar(root, n_per_batch=4, seed=0):
    """A CIFAR-10 'python version' directory with random images: the layout --data-root reads."""
    import pickle

    import numpy as np

    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, n_per_batch).tolist()}, f)


def _vgg9_forward(sd, x):
    """Li et al.'s VGG-9 written out with torch.nn.functional from the state dict alone (eval mode)."""
    import torch.nn.functional as F

    def bn(h, p):
        return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"])

    i = 0
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]:
        if v == "M":
            x, i = F.max_pool2d(x, 2, 2, ceil_mode=True), i + 1
        else:
            x, i = F.relu(bn(F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1),
                             f"features.{i + 1}")), i + 3
    x = F.relu(bn(F.linear(x.flatten(1), sd["fc.0.weight"], sd["fc.0.bias"]), "fc.1"))
    return F.linear(x, sd["classifier.weight"], sd["classifier.bias"])


def test_a_loss_landscape_vgg9_t7_loads_with_model_vgg9_and_gives_the_direct_forward_loss(tmp_path):
    import h5py

    from landscape.cli import main

    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, shape in _li_vgg9_layout():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            sd[k] = torch.randn(shape, generator=g) / fan_in ** 0.5
    torch.save({"state_dict": sd, "acc": 10.0, "epoch": 0}, tmp_path / "model_300.t7")
    _write_cifar(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["surface", "--ckpt", str(tmp_path / "model_300.t7"), "--model", "vgg9", "--dataset", "cifar10",
                 "--data-root", str(tmp_path / "data"), "--x", "-0.5:0.5:3", "--splits", "train",
                 "--layout", "contiguous", "--fold-bn", "off", "--batch-size", "8", "--out", str(out),
                 "--no-progress"]) == 0
    train = landscape.get_dataset("cifar10", "train", root=tmp_path / "data")
    with torch.no_grad():
        direct = torch.nn.functional.cross_entropy(_vgg9_forward(sd, train.inputs), train.targets).item()
    (surface,) = out.glob("*_1d.h5")
    with h5py.File(surface) as f:
        assert f["train_loss"][1] == pytest.approx(direct, rel=1e-5)
