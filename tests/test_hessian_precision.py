"""float32 rounding of Hessian-vector products at saturated minima, measured against float64."""
from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import torch

import landscape.losses
from landscape import build_model, get_dataset, save_checkpoint
from landscape.data import subset_indices
from landscape.cli import main
from landscape.hessian import HessianOperator, dense_hessian, eigenvalues, rounding_error


def _digits96() -> tuple[torch.Tensor, torch.Tensor]:
    """The 96-sample subset ``landscape hessian --samples 96`` takes, so the CLI sees the same data."""
    d = get_dataset("digits", "train")
    idx = subset_indices(len(d), 96, 0)
    return d.inputs[idx], d.targets[idx]


@functools.lru_cache(maxsize=None)
def _fitted_mlp(steps: int) -> torch.nn.Module:
    """A float32 MLP fitted to the subset for ``steps`` full-batch Adam steps: 300 reach a training
    loss near 7e-5, the saturated softmax of a well-trained small-batch minimum; 0 is at init."""
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[12])
    x, y = _digits96()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@functools.lru_cache(maxsize=None)
def _exact_eigenvalues(steps: int) -> np.ndarray:
    """Eigenvalues of the dense float64 Hessian of `_fitted_mlp` on the subset, descending."""
    x, y = _digits96()
    H = dense_hessian(HessianOperator(copy.deepcopy(_fitted_mlp(steps)).double(), (x.double(), y)))
    return np.sort(torch.linalg.eigvalsh(H).numpy())[::-1]


def _dense_reference_error(model, data, v, **kw) -> float:
    """The same quantity through the exact dense float64 Hessian: an independent path."""
    high = HessianOperator(copy.deepcopy(model).double(), (data[0].double(), data[1]), **kw)
    H = dense_hessian(high)
    low = HessianOperator(model, data, **kw).mv(v)
    return float(torch.linalg.vector_norm(low - H @ v) / torch.linalg.vector_norm(H @ v))


@pytest.fixture
def float32_head(monkeypatch):
    """The loss head in the outputs' own float32, as for outputs too large to widen (a large
    vocabulary's logits): where saturation still costs float32 products their accuracy."""
    monkeypatch.setattr(landscape.losses, "WIDE_HEAD_MAX_ELEMENTS", 0)


@pytest.mark.parametrize("steps, high", [(0, 1e-6), (300, 3e-6)])
def test_the_float64_loss_head_keeps_products_accurate_at_a_saturated_minimum(steps, high):
    """At init and at training loss 7e-5 alike, float32 products are within float32's own rounding of
    the dense float64 Hessian's: the saturated softmax no longer costs them their accuracy."""
    model, data = _fitted_mlp(steps), _digits96()
    op = HessianOperator(model, data)
    v = torch.randn(op.num_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    err = rounding_error(op, v)
    assert err < high
    assert err == pytest.approx(_dense_reference_error(model, data, v), rel=1e-3)


def test_rounding_error_matches_the_dense_float64_hessian_with_a_float32_head(float32_head):
    model, data = _fitted_mlp(300), _digits96()
    op = HessianOperator(model, data)
    v = torch.randn(op.num_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    err = rounding_error(op, v)
    assert 3e-5 <= err < 1e-2  # orders of magnitude above float32's ~1e-7
    assert err == pytest.approx(_dense_reference_error(model, data, v), rel=1e-6)


def test_rounding_error_follows_the_operators_subset_and_weight_decay_and_is_zero_in_float64(float32_head):
    model, data = _fitted_mlp(300), _digits96()
    kw = dict(params=[n for n, _ in model.named_parameters()][-2:], weight_decay=1e-3)  # the last layer
    op = HessianOperator(model, data, **kw)
    v = torch.randn(op.num_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert op.num_params == 12 * 10 + 10
    assert rounding_error(op, v) == pytest.approx(_dense_reference_error(model, data, v, **kw), rel=1e-6)
    op64 = HessianOperator(copy.deepcopy(model).double(), data)
    assert rounding_error(op64, torch.randn(op64.num_params, dtype=torch.float64)) == 0.0


def test_cli_notes_float32_rounding_and_dtype_float64_removes_it(tmp_path, capsys, float32_head):
    model = _fitted_mlp(300)
    path = save_checkpoint(tmp_path / "sat.pt", model, {"dataset": "digits"})
    args = ["hessian", "--ckpt", str(path), "--k", "2", "--samples", "96", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "f32")]) == 0
    out32 = capsys.readouterr().out
    rec32 = json.loads((tmp_path / "f32" / "hessian.json").read_text())
    assert rec32["dtype"] == "float32" and rec32["operator"]["dtype"] == "float32"
    err = rec32["float32_rel_error"]["value"]
    assert err > 1e-5 and "note: float32 Hessian-vector products" in out32 and "--dtype float64" in out32

    assert main(args + ["--dtype", "float64", "--tol", "1e-10", "--out", str(tmp_path / "f64")]) == 0
    out64 = capsys.readouterr().out
    rec64 = json.loads((tmp_path / "f64" / "hessian.json").read_text())
    assert rec64["operator"]["dtype"] == "float64" and "float32_rel_error" not in rec64 and "note:" not in out64
    # float64 eigenvalues equal the dense float64 Hessian's top two on the same samples
    exact = _exact_eigenvalues(300)
    assert rec64["largest_eigenvalues"]["values"] == pytest.approx(exact[:2].tolist(), rel=1e-8)
    # and the float32 ones are off by no more than the recorded rounding error allows
    assert rec32["largest_eigenvalues"]["values"][0] == pytest.approx(exact[0], rel=max(10 * err, 1e-6))
    assert rec32["largest_eigenvalues"]["precision_limited"] and "limited by float32 rounding" in out32


def test_eigenvalues_say_when_float32_rounding_limits_them_where_lanczos_alone_claims_convergence(float32_head):
    """Saturated MLP: Lanczos' own estimate meets tol 1e-6 but the dense float64 answer is further off."""
    model, data = _fitted_mlp(300), _digits96()
    exact = _exact_eigenvalues(300)[:2]
    unchecked = eigenvalues(model, data, k=2, tol=1e-6, check_rounding=False)
    assert unchecked.converged and unchecked.rounding_error is None and not unchecked.precision_limited
    actual = np.abs(unchecked.values - exact)
    assert np.any(actual > 1e-6 * np.abs(exact))  # the claim it would make is wrong
    res = eigenvalues(model, data, k=2, tol=1e-6)
    assert np.array_equal(res.values, unchecked.values) and res.n_hvps == unchecked.n_hvps
    assert res.precision_limited and not res.converged and res.rounding_error > 1e-5
    assert np.all(actual <= res.errors)  # the reported error covers the actual one
    assert res.to_dict()["precision_limited"] is True and res.vectors is None
    exact64 = eigenvalues(copy.deepcopy(model).double(), (data[0].double(), data[1]), k=2, tol=1e-10)
    assert exact64.converged and exact64.rounding_error == 0.0 and not exact64.precision_limited


def test_cli_float32_eigenvalues_at_a_saturated_minimum_equal_the_dense_float64_ones(tmp_path, capsys):
    """The same saturated checkpoint with the default float64 loss head: no note, and the float32
    eigenvalues agree with the exact ones to float32's rounding, not to the saturation's 1e-4."""
    path = save_checkpoint(tmp_path / "sat.pt", _fitted_mlp(300), {"dataset": "digits"})
    assert main(["hessian", "--ckpt", str(path), "--k", "2", "--samples", "96", "--no-progress",
                 "--out", str(tmp_path / "f32")]) == 0
    out = capsys.readouterr().out
    rec = json.loads((tmp_path / "f32" / "hessian.json").read_text())
    assert "note:" not in out and rec["float32_rel_error"]["value"] < 3e-6
    assert not rec["largest_eigenvalues"]["precision_limited"]
    assert rec["largest_eigenvalues"]["values"] == pytest.approx(_exact_eigenvalues(300)[:2].tolist(), rel=3e-6)
