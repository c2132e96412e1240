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
    assert "PyHessian-style" in capsys.readouterr().out
