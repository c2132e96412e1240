"""``landscape bench --hessian`` on a small configuration: the record it produces is consistent."""
from __future__ import annotations

import json

import numpy as np
import torch

from landscape.bench.hessian import pyhessian_power
from landscape.cli import main


def test_pyhessian_reference_power_iteration_on_a_dense_matrix():
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    values = np.concatenate([[10.0, 5.0], np.linspace(0, 1, 28)])
    A = Q @ torch.diag(torch.from_numpy(values)) @ Q.T
    calls = []
    top = pyhessian_power(lambda v: calls.append(1) or A @ v, 30, 2)
    assert np.allclose(top, [10.0, 5.0], rtol=1e-3)  # its own 1e-3 change criterion
    assert len(calls) <= 2 * 100


def test_bench_record(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--hessian", "--model", "mlp", "--samples", "150", "--k", "2", "--repeat", "2",
               "--json", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["mode"] == "hessian" and rec["k"] == 2 and rec["seeds"] == 2 and rec["num_samples"] == 150
    assert len(rec["lanczos_topk_hvps_each"]) == 2 and len(rec["power_topk_hvps_each"]) == 2
    assert rec["lanczos_top1_rel_err"] <= 1e-3                 # its tolerance, scored against the reference
    assert rec["lanczos_topk_rel_err"] <= 1e-4
    assert rec["hvp_ratio_topk"] == rec["lanczos_topk_hvps"] / rec["power_topk_hvps"]
    assert rec["reference_top"][0] >= rec["reference_top"][1] > 0
    assert "machine_cpu" in rec
    assert rec["trace_probes"] == 8 and rec["trace_per_vector_s"] > 0 and rec["trace_blocked_s"] > 0
    assert rec["trace_rel_diff"] <= 1e-5   # same probes in blocks: float32 rounding only
    for name in ("auto", "block", "block_plain"):  # paired per seed against the power iteration
        assert len(rec[f"{name}_topk_time_ratio_iqr"]) == 2 and rec[f"{name}_topk_time_ratio"] > 0
        assert rec[f"{name}_topk_rel_err"] <= 1e-4
    assert rec["auto_solver"] == "lanczos" and rec["graphs_retained"] and rec["graph_bytes"] > 0
    assert isinstance(rec["meets_topk_time"], bool)
    assert "PyHessian-style" in capsys.readouterr().out


def test_bench_measures_the_checkpoint_it_is_given(tmp_path):
    import landscape

    torch.manual_seed(0)
    model = landscape.build_model("mlp", hidden=(8,), input_shape=(1, 8, 8), num_classes=10).eval()
    ckpt = landscape.save_checkpoint(tmp_path / "m.pt", model, {"dataset": "digits"})
    out = tmp_path / "bench.json"
    assert main(["bench", "--hessian", "--ckpt", str(ckpt), "--samples", "120", "--k", "2", "--repeat", "1",
                 "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["checkpoint"] == str(ckpt) and rec["dataset"] == "digits" and rec["num_params"] == 8 * 64 + 8 + 8 * 10 + 10
    # the reference is this checkpoint's spectrum (same 120-sample subset), not a freshly trained model's
    from landscape.data import get_dataset, subset_indices

    data = get_dataset("digits", "train")
    idx = subset_indices(len(data.inputs), 120, 0)
    exact = landscape.hessian.eigenvalues(model.double(), (data.inputs[idx].double(), data.targets[idx]), k=2,
                                          tol=1e-10)
    assert np.allclose(rec["reference_top"], sorted(exact.values, reverse=True), rtol=1e-6)


def test_bench_ckpt_outside_hessian_mode_is_one_line(tmp_path, capsys):
    assert main(["bench", "--ckpt", str(tmp_path / "m.pt")]) == 2
    assert "only read by bench --hessian" in capsys.readouterr().err


def test_oracle_stop_equals_separate_runs_stopped_earlier():
    """Prefixes of one run's tridiagonal are the shorter runs: checked by running each length on its own."""
    from landscape.bench.hessian import _rel_err, oracle_stop
    from landscape.hessian.lanczos import lanczos

    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(60, 60, generator=g, dtype=torch.float64))
    values = np.concatenate([[9.0, 7.0, 6.5], np.linspace(0, 3, 57)])
    A = Q @ torch.diag(torch.from_numpy(values)) @ Q.T
    reference = np.array([9.0, 7.0, 6.5])
    run = lanczos(lambda v: A @ v, 60, k=3, tol=1e-12, seed=3)
    for target in (1e-2, 1e-4, 1e-8):
        m = oracle_stop(run, reference, target)
        errs = {j: _rel_err(lanczos(lambda v: A @ v, 60, k=3, tol=1e-300, max_iter=j, seed=3).values, reference)
                for j in range(3, run.n_iter + 1)}
        assert m == min(j for j, e in errs.items() if e <= target)
    assert oracle_stop(run, reference * 1.1, 1e-3) is None
