"""Model registry: published parameter counts, shape checks, clear errors."""
import pytest
import torch

import landscape
from landscape.errors import LandscapeError


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_resnet20_has_the_published_parameter_count():
    assert count(landscape.build_model("resnet20", num_classes=10)) == 272_474


@pytest.mark.parametrize("name", ["resnet56", "resnet56_noshort", "vgg9"])
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
