"""HessianOperator against the exact dense Hessian of tiny models (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.utils.data import DataLoader, TensorDataset

from hessian_cases import HVP_BATCH, case, digits_subset, exact_hessian
from landscape import build_model
from landscape.errors import LandscapeError
from landscape.hessian import HessianOperator, dense_hessian


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_hvp_matches_exact_hessian_with_uneven_batches(name):
    model, data, H, _ = case(name)
    op = HessianOperator(model, data, batch_size=HVP_BATCH)  # 40 + 40 + 16 samples
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(op.num_params, generator=g, dtype=torch.float64)
        assert torch.allclose(op.mv(v), H @ v, rtol=0, atol=1e-12 * float(H.abs().max()) * op.num_params ** 0.5)
    assert op.n_hvps == 3
    assert op.shape == tuple(H.shape)


def test_hvp_uses_eval_mode_and_hands_the_model_back_in_train_mode():
    model, data, H, _ = case("convnet_bn")
    model.train()
    try:
        op = HessianOperator(model, data, batch_size=HVP_BATCH)
        v = torch.randn(op.num_params, dtype=torch.float64)
        bn_before = model.features[1].running_mean.clone()
        hv = op.mv(v)
        assert torch.allclose(hv, H @ v, atol=1e-10)   # BN used running statistics
        assert torch.equal(model.features[1].running_mean, bn_before)
        assert all(m.training for m in model.modules())
    finally:
        model.eval()


def test_no_graph_or_grad_leaks():
    model, data, _, _ = case("mlp")
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    hv = op.mv(torch.ones(op.num_params, dtype=torch.float64))
    assert hv.grad_fn is None and not hv.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_weight_decay_adds_wd_times_identity():
    model, data, H, _ = case("mlp")
    wd = 0.0123
    op = HessianOperator(model, data, batch_size=HVP_BATCH, weight_decay=wd)
    v = torch.randn(op.num_params, dtype=torch.float64)
    assert torch.allclose(op.mv(v), H @ v + wd * v, atol=1e-12)
    assert op.settings["weight_decay_included"] is True


def test_parameter_subset_is_the_matching_block_of_the_hessian():
    model, data, H, _ = case("mlp")
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    starts = np.cumsum([0] + sizes)
    last = [i for i, n in enumerate(names) if n.startswith("net.3.")]  # the output layer
    idx = torch.cat([torch.arange(starts[i], starts[i + 1]) for i in last])
    op = HessianOperator(model, data, batch_size=HVP_BATCH, params="net.3")
    assert op.num_params == len(idx) == 130
    v = torch.randn(op.num_params, dtype=torch.float64)
    assert torch.allclose(op.mv(v), H[idx][:, idx] @ v, atol=1e-12)
    exact_names = HessianOperator(model, data, params=["net.3.weight", "net.3.bias"])
    assert exact_names.num_params == 130


def test_scipy_linear_operator_interface():
    model, data, H, ev = case("mlp")
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    assert isinstance(op, LinearOperator)
    v = np.random.default_rng(0).standard_normal(op.num_params)
    assert np.allclose(op @ v, (H @ torch.from_numpy(v)).numpy(), atol=1e-12)
    top = eigsh(op, k=1, which="LA", tol=1e-10, return_eigenvectors=False)
    assert abs(top[0] - ev[-1]) <= 1e-8 * abs(ev[-1])


@pytest.mark.parametrize("wrap", ["dataset", "loader"])
def test_any_data_form_gives_the_same_products(wrap):
    model, (x, y), H, _ = case("mlp")
    data = TensorDataset(x, y) if wrap == "dataset" else DataLoader(TensorDataset(x, y), batch_size=7)
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    v = torch.randn(op.num_params, dtype=torch.float64)
    assert torch.allclose(op.mv(v), H @ v, atol=1e-12)


def test_float32_data_is_cast_to_a_float64_model():
    model, (x, y), H, _ = case("mlp")
    op = HessianOperator(model, (x.float(), y), batch_size=HVP_BATCH)
    v = torch.randn(op.num_params, dtype=torch.float64)
    # Inputs went through float32 once, so they match to float32 rounding of x, not bit for bit.
    assert torch.allclose(op.mv(v), H @ v, rtol=1e-5, atol=1e-6)


def test_dense_hessian_of_a_very_small_model():
    torch.manual_seed(3)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=3, hidden=[2], activation="tanh").double().eval()
    x, y = digits_subset()
    y = y % 3
    H = exact_hessian(model, x, y)
    D = dense_hessian(HessianOperator(model, (x, y), batch_size=HVP_BATCH))
    assert torch.allclose(D, H, atol=1e-12)


def test_clear_errors():
    model, data, _, _ = case("mlp")
    with pytest.raises(LandscapeError, match="no trainable parameter matches"):
        HessianOperator(model, data, params="features.99")
    with pytest.raises(LandscapeError, match="weight_decay"):
        HessianOperator(model, data, weight_decay=-1.0)
    op = HessianOperator(model, data)
    with pytest.raises(LandscapeError, match="vector of shape"):
        op.mv(torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_block_product_is_stacked_products_and_exact_hessian(name):
    model, data, H, _ = case(name)
    op = HessianOperator(model, data, batch_size=HVP_BATCH)
    V = torch.randn(5, op.num_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    HV = op.mm(V)
    assert op.n_hvps == 5
    stacked = torch.stack([op.mv(v) for v in V])
    assert op.n_hvps == 10
    assert torch.allclose(HV, stacked, rtol=0, atol=1e-12 * float(stacked.abs().max()))
    assert torch.allclose(HV, V @ H, rtol=0, atol=1e-12 * float(H.abs().max()) * op.num_params ** 0.5)
    assert HV.grad_fn is None and all(p.grad is None for p in model.parameters())


def test_block_product_with_weight_decay_and_a_parameter_subset():
    model, data, H, _ = case("mlp")
    sizes = [p.numel() for p in model.parameters()]
    idx = torch.arange(sum(sizes[:-2]), sum(sizes))  # net.3.weight, net.3.bias: the output layer
    wd = 0.0123
    op = HessianOperator(model, data, batch_size=HVP_BATCH, params="net.3", weight_decay=wd)
    V = torch.randn(3, op.num_params, dtype=torch.float64)
    assert torch.allclose(op.mm(V), V @ H[idx][:, idx] + wd * V, atol=1e-12)
    assert op.mm(V[:1]).shape == (1, op.num_params) and op.n_hvps == 4
    with pytest.raises(LandscapeError, match="block of shape"):
        op.mm(torch.zeros(op.num_params, dtype=torch.float64))
