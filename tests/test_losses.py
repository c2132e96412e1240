"""`batch_totals` against the plain torch formulas it replaces."""
import pytest
import torch
import torch.nn.functional as F

from landscape.losses import batch_totals, correct_count


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_fused_cross_entropy_matches_torch(scale):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(1000, 10, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, 10, (1000,), generator=g)
    loss_sum, correct = batch_totals("crossentropy")(out, y)
    assert torch.allclose(loss_sum, F.cross_entropy(out, y, reduction="sum"), rtol=1e-12, atol=0)
    assert int(correct) == int((out.argmax(1) == y).sum())


def test_ties_count_like_argmax():
    out = torch.zeros(6, 3)  # every row ties: argmax picks the first class
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    _, correct = batch_totals("crossentropy")(out, y)
    assert int(correct) == int(correct_count(out, y)) == 2


def test_other_losses_and_targets_take_the_generic_path():
    g = torch.Generator().manual_seed(1)
    out = torch.randn(50, 4, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    loss_sum, correct = batch_totals("mse")(out, y)
    assert torch.allclose(loss_sum, F.mse_loss(out, F.one_hot(y, 4).float()) * 50)
    assert int(correct) == int((out.argmax(1) == y).sum())
    soft = torch.softmax(torch.randn(50, 4, generator=g), 1)  # probability targets: no accuracy
    loss_sum, correct = batch_totals("crossentropy")(out, soft)
    assert torch.allclose(loss_sum, F.cross_entropy(out, soft) * 50)
    assert torch.isnan(correct)
    custom = batch_totals(lambda o, t: (o.sum(1) - t.float()).abs().mean())
    assert torch.allclose(custom(out, y)[0], (out.sum(1) - y.float()).abs().sum())
