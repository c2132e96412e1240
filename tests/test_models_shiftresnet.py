"""ShiftResNets: published parameter counts, structure, gradients, registry and checkpoints."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

import landscape
from landscape.errors import LandscapeError
from landscape.models.shiftresnet import ShiftBlock, ShiftResNet
from landscape.ops import Shift

shift_mod = importlib.import_module("landscape.ops.shift")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_published_counts_shiftresnet20_and_resnet20():
    # Wu et al. 2017 / alvinwan/shiftresnet-cifar: ShiftResNet-20, expansion 3, CIFAR-10.
    assert n_params(landscape.build_model("shiftresnet20", num_classes=10, expansion=3)) == 95_642
    assert n_params(landscape.build_model("resnet20", num_classes=10)) == 272_474


# The shiftresnet-cifar README table, in millions (two decimals): depth -> {expansion: params}.
PUBLISHED_MILLIONS = {20: {1: 0.03, 3: 0.10, 6: 0.19, 9: 0.28},
                      56: {1: 0.10, 3: 0.29, 6: 0.58, 9: 0.87},
                      110: {1: 0.20, 3: 0.59, 6: 1.18, 9: 1.76}}


def analytic_count(depth: int, e: int, num_classes: int = 10, c_in: int = 3) -> int:
    """Closed form: stem + per-block (two 1x1 convs, two BNs) + projection shortcuts + classifier."""
    n = (depth - 2) // 6
    total = c_in * 16 * 9 + 2 * 16 + 64 * num_classes + num_classes
    prev = 16
    for width in (16, 32, 64):
        for i in range(n):
            cin = prev if i == 0 else width
            mid = e * width
            total += cin * mid + 2 * mid + mid * width + 2 * width
            if cin != width:
                total += cin * width + 2 * width
        prev = width
    return total


@pytest.mark.parametrize("depth", [20, 56, 110])
@pytest.mark.parametrize("expansion", [1, 3, 6, 9])
def test_counts_match_published_table_and_closed_form(depth, expansion):
    model = landscape.build_model(f"shiftresnet{depth}", expansion=expansion)
    count = n_params(model)
    assert count == analytic_count(depth, expansion)
    assert round(count / 1e6, 2) == PUBLISHED_MILLIONS[depth][expansion]


def test_no_spatial_convolutions_outside_the_stem():
    model = landscape.build_model("shiftresnet56", expansion=3)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs].count((3, 3)) == 1  # the stem
    blocks = [m for m in model.modules() if isinstance(m, ShiftBlock)]
    assert len(blocks) == 27
    assert all(isinstance(b.shift, Shift) for b in blocks)
    strides = [b.conv2.stride for b in blocks if b.conv2.stride != (1, 1)]
    assert strides == [(2, 2), (2, 2)]


def test_forward_backward_shapes_and_gradients():
    torch.manual_seed(0)
    model = landscape.build_model("shiftresnet20", expansion=1)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_digits_shaped_input_and_evaluate():
    data = landscape.get_dataset("digits", "test")
    model = landscape.build_model("shiftresnet20", input_shape=data.input_shape, num_classes=data.num_classes,
                                  expansion=1)
    loss, acc = landscape.evaluate(model, data)
    assert 0.0 <= acc <= 1.0 and loss > 0


def test_extension_and_reference_give_same_model_output(monkeypatch):
    model = landscape.build_model("shiftresnet20", input_shape=(3, 16, 16), expansion=3).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        a = model(x)
        monkeypatch.setattr(shift_mod, "_ext", None)
        b = model(x)
    assert torch.equal(a, b)


def test_checkpoint_roundtrip(tmp_path):
    model = landscape.build_model("shiftresnet20", num_classes=7, expansion=6)
    assert model.landscape_spec == {"name": "shiftresnet20", "args": {"num_classes": 7, "expansion": 6}}
    path = tmp_path / "srn.pt"
    landscape.save_checkpoint(path, model, {"dataset": "none"})
    ck = landscape.load_checkpoint(path)
    assert isinstance(ck.model, ShiftResNet) and ck.model.expansion == 6
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ck.model(x), model.eval()(x))


def test_registry_names_and_bad_arguments():
    names = landscape.list_models()
    assert {"shiftresnet20", "shiftresnet56", "shiftresnet110"} <= set(names)
    with pytest.raises(LandscapeError, match="expansion"):
        landscape.build_model("shiftresnet20", expansion=0)
    with pytest.raises(LandscapeError, match="expansion"):
        landscape.build_model("shiftresnet20", expansion=2.5)
    with pytest.raises(LandscapeError, match="image inputs"):
        landscape.build_model("shiftresnet20", input_shape=(1, 40))
    with pytest.raises(LandscapeError, match="kernel_size"):
        landscape.build_model("shiftresnet20", kernel_size=4)
