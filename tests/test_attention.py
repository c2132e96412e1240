"""Second-order products through attention (SDPA, nn.MultiheadAttention, nn.TransformerEncoder).

The reference Hessian is built without any double backward: central differences of the exact
gradient in float64 (error ~1e-9 here), so it does not share the code path under test.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape import hessian
from landscape.hessian.hvp import HessianOperator
from landscape.losses import get_loss


def _fd_hessian(model: nn.Module, data, loss, h: float = 1e-5) -> np.ndarray:
    """Dense Hessian by central differences of the float64 gradient (first derivatives only)."""
    x, y = data
    params = [p for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    loss_fn = get_loss(loss)

    def grad_at(w: torch.Tensor) -> torch.Tensor:
        torch.nn.utils.vector_to_parameters(w, params)
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        return torch.cat([p.grad.reshape(-1) for p in params])

    model.eval()
    cols = []
    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = h
        cols.append((grad_at(flat + e) - grad_at(flat - e)) / (2 * h))
    torch.nn.utils.vector_to_parameters(flat, params)
    H = torch.stack(cols, 1).numpy()
    return (H + H.T) / 2


class EncoderClassifier(nn.Module):
    """nn.TransformerEncoder (eval mode: the native fast path would apply without autograd) + a linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4)
        layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


class MHAClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.embed(x)
        return self.head(self.attn(h, h, h, need_weights=False)[0].mean(1))


def _tiny_gpt():
    from landscape.models import build_model

    torch.manual_seed(0)
    model = build_model("gpt-tiny", input_shape=(5,), num_classes=5, width=4, depth=1, heads=2, mlp_ratio=2).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (6, 5), generator=g)
    y = torch.roll(x, -1, dims=1)
    y[0, -2:] = -100  # padding: ignored tokens, so batches weigh by counted tokens
    return model, (x, y)


def _classifier(cls):
    torch.manual_seed(0)
    model = cls().double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 4, 3, generator=g, dtype=torch.float64)
    return model, (x, torch.randint(0, 3, (10,), generator=g))


CASES = {"gpt-tiny (SDPA, token loss)": _tiny_gpt, "TransformerEncoder": lambda: _classifier(EncoderClassifier),
         "MultiheadAttention": lambda: _classifier(MHAClassifier)}


@pytest.mark.parametrize("case", list(CASES))
def test_top_eigenvalues_through_attention_match_the_dense_hessian(case):
    model, data = CASES[case]()
    H = _fd_hessian(model, data, "crossentropy")
    exact = np.linalg.eigvalsh(H)
    op = HessianOperator(model, data, "crossentropy")
    res = hessian.eigenvalues(model, op, k=3, tol=1e-10, max_iter=80, seed=0, progress=False)
    assert np.allclose(res.values, exact[::-1][:3], atol=1e-4, rtol=0), (res.values, exact[::-1][:3])
    if not case.startswith("gpt"):
        return
    # the rest of the spectral toolkit on the causal SDPA model: --which smallest, the trace, SLQ, plot --eig
    from landscape.hessian.extremes import eigen_extremes

    low = hessian.eigenvalues(model, op, k=1, which="smallest", tol=1e-10, max_iter=80, progress=False)
    assert abs(low.values[0] - exact[0]) < 1e-4
    tr = hessian.trace(model, op, n_probes=32, seed=0, progress=False)
    assert abs(tr.value - np.trace(H)) < 4 * tr.stderr + 1e-6
    dens = hessian.density(model, op, n_iter=40, n_probes=1, seed=0, progress=False)
    nodes = np.concatenate([np.asarray(n) for n in dens.nodes])
    assert nodes.max() == pytest.approx(exact[-1], abs=1e-4) and nodes.min() >= exact[0] - 1e-4
    ends = eigen_extremes(data, "crossentropy", tol=1e-8, max_iter=80)(model)  # what landscape plot --eig runs
    assert ends["max_eig"] == pytest.approx(exact[-1], abs=1e-4) and ends["min_eig"] == pytest.approx(exact[0], abs=1e-4)


def test_attention_kernel_choice_is_restored():
    from landscape.attention import double_backward_attention

    before = torch.backends.mha.get_fastpath_enabled()
    with double_backward_attention():
        assert not torch.backends.mha.get_fastpath_enabled()
    assert torch.backends.mha.get_fastpath_enabled() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hessian_vector_products_through_attention_on_cuda():
    model, data = _tiny_gpt()
    cpu = HessianOperator(model, data, "crossentropy")
    v = torch.randn(cpu.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = cpu.mv(v).cpu()
    gpu_model = model.cuda()
    got = HessianOperator(gpu_model, data, "crossentropy", device="cuda").mv(v.cuda()).cpu()
    assert torch.allclose(got, ref, rtol=1e-8, atol=1e-10)
