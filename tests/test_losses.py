"""`batch_totals` against the plain torch formulas it replaces."""
import pytest
import torch
import torch.nn.functional as F

from landscape.losses import IGNORE_INDEX, batch_totals, correct_count, count_targets, get_loss, wide_head


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


def _token_batch(seed=2, b=3, t=7, v=5):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(b, t, v, generator=g, dtype=torch.float64)
    y = torch.randint(0, v, (b, t), generator=g)
    y[0, 4:] = IGNORE_INDEX  # padding at the end of the first sequence
    y[2, :2] = IGNORE_INDEX
    return out, y


def test_token_cross_entropy_is_the_mean_over_counted_tokens():
    out, y = _token_batch()
    counted = [(b, t) for b in range(y.shape[0]) for t in range(y.shape[1]) if y[b, t] != IGNORE_INDEX]
    direct = sum(-torch.log_softmax(out[b, t], 0)[y[b, t]] for b, t in counted) / len(counted)
    assert count_targets(y) == len(counted) == 21 - 3 - 2
    assert torch.allclose(get_loss("crossentropy")(out, y), direct, rtol=1e-12, atol=0)
    loss_sum, correct = batch_totals("crossentropy")(out, y)
    assert torch.allclose(loss_sum, direct * len(counted), rtol=1e-12, atol=0)
    assert int(correct) == sum(int(out[b, t].argmax() == y[b, t]) for b, t in counted)


def test_batches_are_weighted_by_counted_tokens_not_sequences():
    """Two batches with different padding: the count-weighted mean equals the mean over all tokens."""
    out, y = _token_batch(seed=3, b=4)
    ce = get_loss("crossentropy")
    parts = [(out[:1], y[:1]), (out[1:], y[1:])]
    weighted = sum(ce(o, t) * count_targets(t) for o, t in parts) / sum(count_targets(t) for _, t in parts)
    assert torch.allclose(weighted, ce(out, y), rtol=1e-12, atol=0)
    empty = torch.full((1, 7), IGNORE_INDEX)
    assert count_targets(empty) == 0 and float(ce(out[:1], empty)) == 0.0  # weight 0, loss 0, not NaN


def test_ignored_class_targets_do_not_count():
    g = torch.Generator().manual_seed(4)
    out = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    y[::4] = IGNORE_INDEX
    assert count_targets(y) == 15 and count_targets(torch.randn(6, 2)) == 6
    loss_sum, _ = batch_totals("crossentropy")(out, y)
    assert torch.allclose(loss_sum, F.cross_entropy(out, y, reduction="sum"), rtol=1e-12, atol=0)


def test_wide_head_gives_the_saturated_gradient_float32_loses():
    """Logits with a 14-nat margin (loss ~2e-6): float64 head's gradient 1 - p equals the closed form
    ``sum_{j != y} exp(z_j - z_y)``-based value, where float32's is off by more than 1e-3."""
    z = torch.tensor([[14.0, 0.0, 0.0]], requires_grad=True)
    y = torch.tensor([0])
    exact = -2 * torch.exp(torch.tensor(-14.0, dtype=torch.float64)) / (1 + 2 * torch.exp(torch.tensor(-14.0, dtype=torch.float64)))
    (g64,) = torch.autograd.grad(F.cross_entropy(wide_head(z), y), z)
    (g32,) = torch.autograd.grad(F.cross_entropy(z, y), z)
    assert g64.dtype == torch.float32  # the network keeps its dtype: the cast's backward hands it back
    assert float(g64[0, 0]) == pytest.approx(float(exact), rel=1e-6)
    assert abs(float(g32[0, 0]) - float(exact)) > 1e-3 * abs(float(exact))


def test_wide_head_leaves_float64_and_very_large_outputs_alone(monkeypatch):
    import landscape.losses

    x64 = torch.zeros(3, 4, dtype=torch.float64)
    assert wide_head(x64) is x64
    assert wide_head(torch.zeros(3, 4, dtype=torch.bfloat16)).dtype == torch.float64
    monkeypatch.setattr(landscape.losses, "WIDE_HEAD_MAX_ELEMENTS", 11)
    big = torch.zeros(3, 4)
    assert wide_head(big) is big
