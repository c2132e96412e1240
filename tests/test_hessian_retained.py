"""Products on retained gradient graphs equal the operator's own, follow weight changes, and fall back."""
import numpy as np
import torch

from hessian_cases import HVP_BATCH, case, digits_subset, tiny_convnet
from landscape.hessian import HessianOperator
from landscape.hessian.retained import RetainedProducts, affine_batchnorm


def test_retained_products_equal_the_operators_own_and_count():
    # The reference builds a fresh graph per product with PyTorch's own BatchNorm (a second
    # implementation); the dense-Hessian check is the block solver's (test_hessian_lanczos).
    model, data = tiny_convnet(), digits_subset()
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    V = torch.randn(3, op.num_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with RetainedProducts(op) as rp:
        out = rp.mm(V)
        again = rp.mv(V[1])
        assert rp.retained and rp.graph_bytes > 0
    ref = HessianOperator(model, data, batch_size=HVP_BATCH).mm(V)
    scale = float(ref.abs().max())
    torch.testing.assert_close(out, ref, rtol=1e-8, atol=1e-10 * scale)
    torch.testing.assert_close(again, out[1], rtol=1e-10, atol=1e-12 * scale)
    assert op.n_hvps == 4


def test_graphs_are_rebuilt_after_the_weights_move_and_fall_back_without_room():
    model, data, H, _ = case("mlp")
    op = HessianOperator(model, data, batch_size=HVP_BATCH, weight_decay=1e-3)
    v = torch.randn(op.num_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rp = RetainedProducts(op)
    before = rp.mv(v)
    p = next(model.parameters())
    with torch.no_grad():
        p.mul_(1.5)
    try:
        moved = rp.mv(v)
        torch.testing.assert_close(moved, op.mv(v), rtol=1e-10, atol=1e-12)  # follows the in-place change
        assert not torch.allclose(moved, before)
    finally:
        with torch.no_grad():
            p.div_(1.5)
    tight = RetainedProducts(op, max_bytes=0)
    torch.testing.assert_close(tight.mv(v), v @ H + 1e-3 * v, rtol=1e-10, atol=1e-12)
    assert tight.retained is False and 0 < tight.forward_share < 1


def test_affine_batchnorm_computes_the_same_eval_function_and_leaves_training_alone():
    model, (x, _), _, _ = case("convnet_bn")
    with torch.no_grad():
        ref = model(x)
        with affine_batchnorm(model):
            torch.testing.assert_close(model(x), ref, rtol=1e-12, atol=1e-12)
    assert not any("forward" in vars(m) for m in model.modules())  # put back
