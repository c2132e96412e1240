"""gpt-tiny and the pysrc byte-level dataset: shapes, causality, a fixed split, one line for misuse."""
import numpy as np
import pytest
import torch

import landscape
from landscape.errors import LandscapeError


def test_gpt_tiny_is_causal_and_a_few_hundred_thousand_parameters():
    model = landscape.build_model("gpt-tiny")
    assert 200_000 < sum(p.numel() for p in model.parameters()) < 500_000
    small = landscape.build_model("gpt-tiny", input_shape=(8,), num_classes=11, width=8, heads=2).eval()
    x = torch.randint(0, 11, (2, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 11  # change only the future of position 4
    with torch.no_grad():
        a, b = small(x), small(y)
    assert a.shape == (2, 8, 11) and torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])
    with pytest.raises(LandscapeError, match="longer than the context"):
        small(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(LandscapeError, match="token ids"):
        small(torch.zeros(1, 8))


def test_pysrc_is_next_byte_prediction_on_a_fixed_split(tmp_path, monkeypatch):
    from landscape.data import PYSRC_CONTEXT, PYSRC_SIZES, pysrc_files

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    train, test = landscape.get_dataset("pysrc", "train"), landscape.get_dataset("pysrc", "test")
    assert train.inputs.shape == (PYSRC_SIZES["train"], PYSRC_CONTEXT) and len(test) == PYSRC_SIZES["test"]
    assert train.num_classes == 128 and train.inputs.dtype == torch.int64
    assert torch.equal(train.inputs[:, 1:], train.targets[:, :-1])  # targets are the inputs shifted by one
    cached = list(tmp_path.glob("pysrc-*.npz"))
    assert len(cached) == 1 and train.fingerprint[:16] in cached[0].name
    stored = np.load(cached[0])
    assert list(stored["files"]) == [f.name for f in pysrc_files()]
    text = bytes(train.inputs[0].numpy().astype(np.uint8)).decode("ascii")
    assert text.isprintable() or "\n" in text
    again = landscape.get_dataset("pysrc", "train")  # from the cache: the same windows
    assert torch.equal(again.inputs, train.inputs)
    rows = {bytes(r.numpy().astype(np.uint8)) for r in train.inputs[:2000]}
    assert not rows & {bytes(r.numpy().astype(np.uint8)) for r in test.inputs}  # split by file: no shared windows


def test_multi_batch_token_hessian_is_token_weighted_like_one_batch():
    """gpt-tiny (SDPA) with padding that differs per batch: batches of 2 sequences give the Hessian of
    the one-batch token mean (weights = counted tokens, not sequences), checked by central
    differences of the gradient, and its top eigenvalues; weighing batches by sequences would not.
    (The one-batch spectrum against a dense Hessian: tests/test_attention.py.)"""
    from landscape import hessian
    from landscape.risk import EmpiricalRisk

    torch.manual_seed(0)
    model = landscape.build_model("gpt-tiny", input_shape=(5,), num_classes=5, width=4, depth=1, heads=2,
                                  mlp_ratio=2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (6, 5), generator=g)
    y = torch.roll(x, -1, dims=1)
    y[:, -1] = -100
    y[0, 1:], y[2, 3:] = -100, -100  # batches of 2: 1 + 4, 3 + 4, 4 + 4 counted tokens
    one = EmpiricalRisk(model, (x, y), batch_size=6)
    many = EmpiricalRisk(model, (x, y), batch_size=2)
    assert [b.weight for b in many.batches] == [5, 7, 8] and one.total_weight == 20
    V = torch.randn(6, one.num_params, generator=g, dtype=torch.float64)
    HV = one.hmm(V)
    assert torch.allclose(many.hmm(V), HV, rtol=1e-9, atol=1e-12)
    w0, h = one.weights(), 1e-5  # the one-batch product against central differences of its gradient
    with one:
        one.set_flat(w0 + h * V[0])
        gp = one.loss_and_grad()[1]
        one.set_flat(w0 - h * V[0])
        gm = one.loss_and_grad()[1]
    assert torch.allclose((gp - gm) / (2 * h), HV[0], atol=1e-7)
    exact = hessian.eigenvalues(one, k=3, tol=1e-10, seed=1).values
    top = hessian.eigenvalues(model, (x, y), k=3, batch_size=2, tol=1e-10, seed=0)
    assert np.allclose(top.values, exact, rtol=1e-7), (top.values, exact)
    per_sequence = sum(EmpiricalRisk(model, (x[i:i + 2], y[i:i + 2])).hmm(V) for i in range(0, 6, 2)) / 3
    assert (per_sequence - HV).norm() > 1e-2 * HV.norm()
