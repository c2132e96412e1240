"""Products on retained gradient graphs equal the dense Hessian and the risk's own, follow weight changes, and fall back."""
import numpy as np
import pytest
import torch

from hessian_cases import HVP_BATCH, case
from landscape.hessian import eigenvalues
from landscape.hessian.retained import RetainedProducts, affine_batchnorm
from landscape.risk import EmpiricalRisk


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_retained_products_equal_the_dense_hessian_and_the_risks_own(name):
    model, data, H, _ = case(name)
    risk = EmpiricalRisk(model, data, batch_size=HVP_BATCH)
    V = torch.randn(3, risk.num_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with RetainedProducts(risk) as rp:
        out = rp.mm(V)
        again = rp.mv(V[1])
        assert rp.retained and rp.graph_bytes > 0
    assert risk.n_hvps == 4
    exact = V @ H
    scale = float(exact.abs().max())
    torch.testing.assert_close(out, exact, rtol=1e-8, atol=1e-10 * scale)
    torch.testing.assert_close(again, out[1], rtol=1e-12, atol=1e-13 * scale)
    torch.testing.assert_close(out, risk.hmm(V), rtol=1e-10, atol=1e-12 * scale)  # plain products, to rounding


def test_graphs_are_rebuilt_after_the_weights_move_and_fall_back_without_room():
    model, data, H, _ = case("mlp")
    risk = EmpiricalRisk(model, data, batch_size=HVP_BATCH, weight_decay=1e-3)
    v = torch.randn(risk.num_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rp = RetainedProducts(risk)
    before = rp.mv(v)
    p = next(model.parameters())
    with torch.no_grad():
        p.mul_(1.5)
    try:
        moved = rp.mv(v)
        torch.testing.assert_close(moved, risk.hvp(v), rtol=1e-10, atol=1e-12)  # follows the in-place change
        assert not torch.allclose(moved, before)
    finally:
        with torch.no_grad():
            p.div_(1.5)
    tight = RetainedProducts(risk, max_bytes=0)
    torch.testing.assert_close(tight.mv(v), v @ H + 1e-3 * v, rtol=1e-10, atol=1e-12)
    assert tight.retained is False and 0 < tight.forward_share < 1


def test_affine_batchnorm_computes_the_same_eval_function_and_leaves_training_alone():
    model, (x, _), _, _ = case("convnet_bn")
    with torch.no_grad():
        ref = model(x)
        with affine_batchnorm(model):
            torch.testing.assert_close(model(x), ref, rtol=1e-12, atol=1e-12)
    assert not any("forward" in vars(m) for m in model.modules())  # put back


def test_auto_with_a_start_vector_runs_lanczos_from_it():
    # landscape.track warm-starts without naming a method: auto must take v0, not refuse it.
    model, data, _, ev = case("mlp")
    risk = EmpiricalRisk(model, data, batch_size=HVP_BATCH)
    cold = eigenvalues(risk, k=1, tol=1e-10, return_vectors=True)
    warm = eigenvalues(risk, k=1, tol=1e-10, v0=cold.vectors[0])
    assert warm.settings["solver"] == "lanczos" and warm.settings["start"] == "v0"
    assert warm.settings["graphs_retained"] is True
    np.testing.assert_allclose(warm.values, ev[-1:], rtol=1e-8)
    assert warm.n_hvps < cold.n_hvps  # started on the eigenvector: converges at once
