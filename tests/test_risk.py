"""`EmpiricalRisk` on dict batches and token outputs, against direct computations.

The model is a one-layer attention language model of 114 parameters written with plain matmuls
(no fused attention), taking ``input_ids`` and ``attention_mask`` by name and returning an object
with ``.logits`` of shape ``(B, T, V)``; targets are ``(B, T)`` with ``-100`` at padding. The
references run the whole dataset as one batch through `torch.func.functional_call` (loss) and
`torch.autograd.functional.hessian` (dense Hessian): independent of the batching and product code.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import landscape
from landscape import hessian, sharpness
from landscape.batches import call_model, split_batch
from landscape.errors import LandscapeError
from landscape.losses import IGNORE_INDEX
from landscape.risk import EmpiricalRisk

VOCAB, DIM, T, N = 6, 4, 5, 22


class TinyAttentionLM(nn.Module):
    """Embedding, one masked causal attention head, a vocabulary head: ``model(input_ids=, attention_mask=)``."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, input_ids, attention_mask):
        h = self.embed(input_ids)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / DIM ** 0.5
        t = input_ids.shape[1]
        allowed = torch.ones(t, t, dtype=torch.bool).tril() & attention_mask[:, None, :].bool()
        scores = scores.masked_fill(~allowed, -1e9)
        h = h + torch.softmax(scores, dim=-1) @ v
        return SimpleNamespace(logits=self.head(h))


@functools.lru_cache(maxsize=None)
def token_data() -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (N, T), generator=g)
    lengths = torch.randint(2, T + 1, (N,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    labels = torch.roll(ids, -1, dims=1).masked_fill(mask == 0, IGNORE_INDEX)
    labels[:, -1] = IGNORE_INDEX  # no next token after the last one
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def model64() -> nn.Module:
    torch.manual_seed(1)
    return TinyAttentionLM().double()


def direct_loss(model: nn.Module, weights: dict | None = None) -> torch.Tensor:
    d = token_data()
    out = functional_call(model, weights or dict(model.named_parameters()),
                          kwargs={"input_ids": d["input_ids"], "attention_mask": d["attention_mask"]})
    return F.cross_entropy(out.logits.reshape(-1, VOCAB), d["labels"].reshape(-1), ignore_index=IGNORE_INDEX)


@functools.lru_cache(maxsize=None)
def exact_hessian() -> torch.Tensor:
    model = model64()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(w):
        parts = torch.split(w, [int(np.prod(s)) for s in shapes])
        return direct_loss(model, {n: p.view(s) for n, p, s in zip(names, parts, shapes)})

    return torch.autograd.functional.hessian(f, w0)


def test_the_batch_rule():
    d = token_data()
    inputs, target = split_batch(d)
    assert set(inputs) == {"input_ids", "attention_mask"} and target is d["labels"]
    inputs, target = split_batch({"x": 1, "answer": 2}, target_key="answer")
    assert inputs == {"x": 1} and target == 2
    assert split_batch((1, 2, 3)) == ((1, 2), 3)
    with pytest.raises(LandscapeError, match="target_key"):
        split_batch({"input_ids": 1})
    one = torch.ones(2)
    assert torch.equal(call_model(lambda a, b: (a + b, None), (one, one)), 2 * one)  # tuple outputs: the first entry


def test_dict_batches_and_token_loss_match_a_direct_computation():
    model = model64()
    risk = EmpiricalRisk(model, token_data(), batch_size=8)  # 8 + 8 + 6 sequences, uneven token counts
    counted = int((token_data()["labels"] != IGNORE_INDEX).sum())
    assert risk.total_weight == counted and risk.num_samples == N
    assert [b.weight for b in risk.batches] != [8 * (T - 1)] * 2 + [6 * (T - 1)]  # padding differs per batch
    exact = float(direct_loss(model).detach())
    assert risk.loss() == pytest.approx(exact, rel=1e-12)
    loss, acc = landscape.evaluate(model, token_data(), batch_size=8)
    assert loss == pytest.approx(exact, rel=1e-6)  # evaluate() takes the outputs in float32
    d = token_data()
    logits = model(d["input_ids"], d["attention_mask"]).logits
    keep = d["labels"] != IGNORE_INDEX
    hits = (logits.argmax(-1) == d["labels"])[keep]
    assert acc == int(hits.sum()) / counted
    f, g = risk.loss_and_grad()
    ref = torch.autograd.grad(direct_loss(model), list(model.parameters()))
    assert f == pytest.approx(exact, rel=1e-12)
    assert torch.allclose(g, torch.cat([t.reshape(-1) for t in ref]), rtol=1e-10, atol=1e-12)


def test_token_hessian_matches_the_dense_hessian():
    model = model64()
    risk = EmpiricalRisk(model, token_data(), batch_size=8)
    assert risk.num_params < 2000
    H = exact_hessian()
    V = torch.randn(4, risk.num_params, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.allclose(risk.hmm(V), V @ H, rtol=1e-8, atol=1e-10)
    top = hessian.eigenvalues(risk, k=3, tol=1e-10)
    assert np.allclose(top.values, torch.linalg.eigvalsh(H).flip(0)[:3].numpy(), rtol=1e-7)


def test_token_surface_and_keskar_through_the_convenience_calls():
    model = model64()
    g = torch.Generator().manual_seed(3)
    direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1 for n, p in model.named_parameters()}
    xs = [-1.0, 0.0, 0.5]
    surf = landscape.compute_surface(model, [direction], token_data(), x=xs, batch_size=8, progress=False,
                                     fold_bn=False)
    named = dict(model.named_parameters())
    for i, a in enumerate(xs):
        moved = {n: p.detach() + a * direction[n] for n, p in named.items()}
        assert surf["train_loss"][i] == pytest.approx(float(direct_loss(model, moved).detach()), rel=1e-6)
    res = sharpness.keskar(model, token_data(), eps=1e-2, max_iter=3, batch_size=8)
    assert res.base_loss == pytest.approx(float(direct_loss(model).detach()), rel=1e-12)
    assert res.value > 0 and res.settings["num_samples"] == N


# ---------------------------------------------------------------- resident == streaming
@pytest.fixture(scope="module")
def digits_model():
    torch.manual_seed(0)
    model = landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8))
    return model.eval()


def _both(model, data, **kw):
    return (EmpiricalRisk(model, data, data_on="device", **kw), EmpiricalRisk(model, data, data_on="stream", **kw))


def test_streaming_gives_the_resident_numbers_bit_for_bit(digits_model, digits):
    """Same samples, same order, same batch size: surfaces, eigenvalues, traces, sharpness identical."""
    train, _ = digits
    model = digits_model
    opts = dict(batch_size=30, samples=100, seed=3)  # 30 + 30 + 30 + 10 of a fixed subset, drawn by index
    resident, streaming = _both(model, train, **opts)
    assert resident.data_on == "device" and streaming.data_on == "stream"
    assert isinstance(streaming.batches.loader, torch.utils.data.DataLoader)
    assert torch.equal(resident.subset, streaming.subset) and resident.total_weight == streaming.total_weight == 100
    assert resident.evaluate() == streaming.evaluate()
    assert resident.loss_and_grad()[0] == streaming.loss_and_grad()[0]
    eig = [hessian.eigenvalues(r, k=2, max_iter=8, tol=1e-12) for r in (resident, streaming)]
    assert np.array_equal(eig[0].values, eig[1].values) and eig[0].n_hvps == eig[1].n_hvps == 8
    tr = [hessian.trace(r, n_probes=4, seed=1) for r in (resident, streaming)]
    assert tr[0].value == tr[1].value and tr[0].stderr == tr[1].stderr
    ks = [sharpness.keskar(r, eps=1e-3, max_iter=2) for r in (resident, streaming)]
    assert ks[0].value == ks[1].value and ks[0].n_evals == ks[1].n_evals
    g = torch.Generator().manual_seed(0)
    direction = {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}
    for rtol in (None, 0.05):  # plain, and the adaptive prefix of one fixed permutation
        surfaces = [landscape.compute_surface(model, [direction], train, x=[-0.5, 0.5], batch_size=30,
                                              samples=100, subset_seed=3, rtol=rtol, min_samples=30,
                                              progress=False, fold_bn=False, data_on=on)
                    for on in ("device", "stream")]
        for key in surfaces[0].arrays:
            assert np.array_equal(surfaces[0][key], surfaces[1][key], equal_nan=True), key


def test_a_user_dataloader_streams_as_it_is(digits_model, digits):
    train, _ = digits
    x, y = train.inputs[:70], train.targets[:70]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    streaming = EmpiricalRisk(digits_model, loader, data_on="stream", batch_size=32)
    assert streaming.batches.loader is loader and streaming.num_samples == 70
    assert streaming.evaluate() == EmpiricalRisk(digits_model, (x, y), batch_size=32).evaluate()
    with pytest.raises(LandscapeError, match="data_on must be one of"):
        EmpiricalRisk(digits_model, loader, data_on="disk")


def test_a_resident_subset_reads_only_its_samples(digits_model, digits):
    """data_on='device' with ``samples`` on a Dataset reads those samples, not the split (which may not fit)."""
    train, _ = digits
    read = set()

    class Counted(torch.utils.data.Dataset):
        def __len__(self):
            return len(train)

        def __getitem__(self, i):
            read.add(int(i))
            return train.inputs[i], train.targets[i]

    resident = EmpiricalRisk(digits_model, Counted(), data_on="device", samples=50, seed=2, batch_size=20)
    assert read == set(resident.subset.tolist()) and len(read) == 50
    assert resident.evaluate() == EmpiricalRisk(digits_model, train, samples=50, seed=2, batch_size=20).evaluate()


@pytest.mark.parametrize("data_on", ["stream", "device"])
def test_a_dataloader_over_a_sampled_subset_stands_for_that_subset(data_on):
    """A DataLoader whose sampler picks rows (a SubsetRandomSampler over a validation split) is the risk
    of those rows: count, loss and Hessian products equal the risk of the same rows as tensors.
    Streamed, its count once came from the whole dataset's targets, so products were 100/1437 of the
    truth; drop_last is not part of the data; a sampler drawing with replacement is refused."""
    from torch.utils.data import DataLoader, Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler

    d = landscape.get_dataset("digits", "train")
    torch.manual_seed(0)
    model = landscape.build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[6]).double().eval()
    x, y = d.inputs.double(), d.targets
    rows = list(range(0, 300, 3))
    ds = TensorDataset(x, y)
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    cases = [(DataLoader(ds, batch_size=16, sampler=SubsetRandomSampler(rows)), rows),
             (DataLoader(Subset(ds, range(105)), batch_size=10, drop_last=True), list(range(105)))]
    for loader, picked in cases:
        ref = landscape.EmpiricalRisk(model, (x[picked], y[picked]), batch_size=16)
        risk = landscape.EmpiricalRisk(model, loader, batch_size=16, data_on=data_on)
        assert (risk.num_samples, risk.total_weight) == (len(picked), len(picked))
        assert risk.loss() == pytest.approx(ref.loss(), rel=1e-12)
        assert torch.allclose(risk.hvp(v), ref.hvp(v), rtol=1e-10, atol=1e-12)
        sub = landscape.EmpiricalRisk(model, loader, batch_size=16, data_on=data_on, samples=40, seed=3)
        chosen = [picked[i] for i in sub.subset.tolist()]  # the subset is drawn from the loader's rows
        assert sub.loss() == pytest.approx(landscape.EmpiricalRisk(model, (x[chosen], y[chosen])).loss(), rel=1e-12)
    weighted = DataLoader(ds, batch_size=16, sampler=WeightedRandomSampler(torch.ones(len(ds)), 100))
    with pytest.raises(landscape.LandscapeError, match="draws with replacement"):
        landscape.EmpiricalRisk(model, weighted, data_on=data_on)
