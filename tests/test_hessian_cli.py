"""``landscape hessian``: JSON and PNG output, agreement with the library, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from landscape import build_model, get_dataset, save_checkpoint
from landscape.cli import main
from landscape.data import subset_indices
from landscape.hessian import eigenvalues, trace


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=[3, 6, 6], pool=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, {"dataset": "digits"})
    return path, model


def subset(n=120):
    d = get_dataset("digits", "train")
    idx = subset_indices(len(d), n, 0)
    return d.inputs[idx], d.targets[idx]


def test_hessian_json_png_and_agreement_with_the_library(ckpt, tmp_path, capsys):
    path, model = ckpt
    out = tmp_path / "out"
    rc = main(["hessian", "--ckpt", str(path), "--k", "2", "--which", "both", "--tol", "1e-4", "--trace", "--probes", "8",
               "--density", "--density-iter", "10", "--density-runs", "2", "--samples", "120", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    rec = json.loads((out / "hessian.json").read_text())
    data = subset(120)
    model.eval()
    top = eigenvalues(model, data, k=2, tol=1e-4)
    bottom = eigenvalues(model, data, k=2, which="smallest", tol=1e-4)
    assert np.allclose(rec["largest_eigenvalues"]["values"], top.values, rtol=1e-9)
    assert np.allclose(rec["smallest_eigenvalues"]["values"], bottom.values, rtol=1e-9)
    assert rec["trace"]["value"] == pytest.approx(trace(model, data, n_probes=8).value, rel=1e-5)
    assert rec["samples"] == 120 and rec["dataset"] == "digits" and rec["operator"]["weight_decay_included"] is False
    assert len(rec["density"]["nodes"]) == 2 and rec["n_hvps_total"] > 20
    png = out / "density.png"
    assert rec["density"]["png"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "largest 2" in printed and "trace" in printed and "hessian.json" in printed


def test_weight_decay_and_layer_subset_options(ckpt, tmp_path):
    path, model = ckpt
    out = tmp_path / "wd"
    assert main(["hessian", "--ckpt", str(path), "--k", "1", "--weight-decay", "0.01", "--params", "classifier",
                 "--samples", "120", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads((out / "hessian.json").read_text())
    plain = eigenvalues(model, subset(120), k=1, params="classifier")
    assert rec["largest_eigenvalues"]["values"][0] == pytest.approx(plain.values[0] + 0.01, rel=1e-5)
    assert rec["operator"]["params"] == "classifier" and rec["operator"]["num_params"] == 70


def test_user_errors_are_one_line(ckpt, tmp_path, capsys):
    path, model = ckpt
    assert main(["hessian", "--ckpt", str(path), "--params", "nope", "--samples", "50", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("landscape hessian: error:") and "nope" in err and len(err.splitlines()) == 1
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, model, {})  # no dataset recorded
    assert main(["hessian", "--ckpt", str(bare), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--dataset" in capsys.readouterr().err


def _refuse(*_, **__):
    raise AssertionError("recomputed a part the file already holds")


def test_rerun_reuses_finished_parts_and_a_kill_loses_only_the_part_in_flight(ckpt, tmp_path, capsys, monkeypatch):
    import landscape.hessian as lh

    path, _ = ckpt
    out = tmp_path / "parts"
    base = ["hessian", "--ckpt", str(path), "--k", "2", "--samples", "120", "--tol", "1e-4", "--out", str(out),
            "--no-progress"]
    parts = ["--trace", "--probes", "8", "--density", "--density-iter", "8", "--density-runs", "2"]

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # killed during the density: eigenvalues and trace are already on disk
        m.setattr(lh, "density", interrupted)
        assert main(base + parts) == 130
    kept = json.loads((out / "hessian.json").read_text())
    assert {"largest_eigenvalues", "trace"} <= set(kept) and "density" not in kept
    capsys.readouterr()

    with monkeypatch.context() as m:  # the rerun computes only what is missing
        m.setattr(lh, "lanczos", _refuse)  # the solvers behind eigenvalues and trace (they reuse stored parts)
        m.setattr(lh, "block_lanczos", _refuse)
        m.setattr(lh, "hutchinson", _refuse)
        assert main(base + parts) == 0
    printed = capsys.readouterr().out
    assert printed.count("(reused: same checkpoint, data and settings)") == 2
    full = json.loads((out / "hessian.json").read_text())
    assert full["largest_eigenvalues"] == kept["largest_eigenvalues"] and full["trace"] == kept["trace"]
    assert len(full["density"]["nodes"]) == 2 and (out / "density.png").exists()

    with monkeypatch.context() as m:  # another probe count: only the trace is computed again
        m.setattr(lh, "lanczos", _refuse)
        m.setattr(lh, "block_lanczos", _refuse)
        m.setattr(lh, "slq", _refuse)
        assert main(base + ["--trace", "--probes", "4", "--density", "--density-iter", "8", "--density-runs", "2"]) == 0
    again = json.loads((out / "hessian.json").read_text())
    assert again["trace"]["request"]["probes"] == 4 and again["trace"]["n_hvps"] == 4
    assert again["density"] == full["density"]
    capsys.readouterr()

    # other data (a different subset size): nothing is reused, and the parts not asked for are dropped
    assert main([a if a != "120" else "100" for a in base]) == 0
    other = json.loads((out / "hessian.json").read_text())
    assert other["samples"] == 100 and "trace" not in other and "(reused" not in capsys.readouterr().out


@pytest.mark.parametrize("part, options, kill_at, saved, message, new_hvps", [
    # SLQ: 10 runs of 6 steps in lockstep blocks of 8 (one product call per step); killed in the second block
    ("density", ["--density", "--density-iter", "6", "--density-runs", "10"], 7,
     lambda rec: len(rec["density_runs"]["runs"]) == 8, "(8 of 10 runs reused from an interrupted run)", 2 * 6),
    # Hutchinson: 20 probes in blocks of 8 (one product call per block); killed in the third block
    ("trace", ["--trace", "--probes", "20"], 3,
     lambda rec: len(rec["trace_probes"]["samples"]) == 16, "(16 of 20 probes reused from an interrupted run)", 4),
])
def test_a_kill_inside_a_long_part_keeps_its_finished_pieces(ckpt, tmp_path, capsys, monkeypatch, part, options,
                                                            kill_at, saved, message, new_hvps):
    import landscape.cost
    from landscape.risk import EmpiricalRisk

    path, _ = ckpt
    cmd = ["hessian", "--ckpt", str(path), "--no-eigenvalues", "--samples", "120", "--no-progress", *options]
    real, real_announce, calls, planning = EmpiricalRisk.hmm, landscape.cost.announce, [], [False]

    def killed(self, V):
        if not planning[0]:  # the cost plan's pilot runs products too: count the run's own
            calls.append(1)
            if len(calls) == kill_at:
                raise KeyboardInterrupt
        return real(self, V)

    def announce(*args, **kwargs):
        planning[0] = True
        try:
            return real_announce(*args, **kwargs)
        finally:
            planning[0] = False

    with monkeypatch.context() as m:
        m.setattr(EmpiricalRisk, "hmm", killed)
        m.setattr(landscape.cost, "announce", announce)
        assert main(cmd + ["--out", str(tmp_path / "a")]) == 130
    partial = json.loads((tmp_path / "a" / "hessian.json").read_text())
    assert saved(partial) and part not in partial
    capsys.readouterr()
    assert main(cmd + ["--out", str(tmp_path / "a")]) == 0
    assert message in capsys.readouterr().out
    resumed = json.loads((tmp_path / "a" / "hessian.json").read_text())
    assert set(resumed) & {"density_runs", "trace_probes"} == set() and resumed[part]["n_hvps"] == new_hvps
    assert main(cmd + ["--out", str(tmp_path / "b")]) == 0  # uninterrupted, for comparison
    whole = json.loads((tmp_path / "b" / "hessian.json").read_text())[part]
    for key in ("nodes", "density") if part == "density" else ("value",):
        assert np.allclose(resumed[part][key], whole[key], rtol=1e-6, atol=1e-9)


def test_a_result_flagged_as_limited_by_float32_rounding_always_gets_its_note():
    """The flag on a result line says "see the note": the note is there whenever the flag is, even
    when the rounding is within 10x of --tol (where an unflagged run prints no note)."""
    from landscape.cli.hessian import _rounding_note

    assert _rounding_note(1.1e-6, "largest", 1e-6, 512) == []
    (line,) = _rounding_note(1.1e-6, "largest", 1e-6, 512, flagged=True)
    assert line.startswith("note: float32 Hessian-vector products are 1.1e-06 off") and "--dtype float64" in line
    assert len(_rounding_note(2e-5, "largest", 1e-6, 512)) == 1
