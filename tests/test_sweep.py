import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import landscape
from landscape.data import LabeledData
from landscape.errors import LandscapeError
from landscape.sweep import assign_runs, load_records, plan_sweep, run_sweep

from conftest import readonly_dir


@pytest.fixture(scope="module")
def tiny():
    tr, te = landscape.get_dataset("digits", "train"), landscape.get_dataset("digits", "test")
    return (LabeledData(tr.inputs[:256], tr.targets[:256], name="digits", num_classes=10),
            LabeledData(te.inputs[:100], te.targets[:100], name="digits", num_classes=10))


def test_plan_budgets_and_lr_scaling():
    runs = plan_sweep(n_train=1024, batch_sizes=[32, 128, 512], weight_decays=[0, 5e-4], seeds=[0, 1],
                      lrs=[0.1], lr_scaling="linear", base_batch_size=128, epochs=2)
    assert len(runs) == 12 and len({r.name for r in runs}) == 12
    by_bs = {r.batch_size: r for r in runs}
    assert {b: r.steps for b, r in by_bs.items()} == {32: 64, 128: 16, 512: 4}  # same epochs
    assert by_bs[32].lr == pytest.approx(0.025) and by_bs[512].lr == pytest.approx(0.4)
    same_steps = plan_sweep(n_train=1024, batch_sizes=[32, 512], weight_decays=[0], seeds=[0], lrs=[0.1],
                            lr_scaling="sqrt", base_batch_size=128, budget="steps", epochs=2)
    assert [r.steps for r in same_steps] == [16, 16]  # 2 epochs at the base batch size 128
    assert same_steps[1].lr == pytest.approx(0.2)
    with pytest.raises(LandscapeError, match="batch sizes"):
        plan_sweep(n_train=100, batch_sizes=[128])
    with pytest.raises(LandscapeError, match="budget"):
        plan_sweep(n_train=100, batch_sizes=[10], budget="flops")


def test_default_eval_cadence_bounds_test_passes_in_short_runs():
    from landscape.sweep import default_eval_every

    # long runs: an epoch or 1/100 of the run, as before (20 digits epochs at batch 32: every 8 of 880 steps)
    assert default_eval_every(880, 44, 32, n_test=360) == 8 == default_eval_every(880, 44, 32)
    assert default_eval_every(40, 2, 512, n_test=360) == 1
    # a 100-step run at batch 16 on 1,024 test sequences: every step before, now 10 evaluations
    assert default_eval_every(100, 512, 16) == 1
    assert default_eval_every(100, 512, 16, n_test=1024) == 10
    # longer: at most 2 test samples per trained sample (1024 / (2 * 16) = 32 steps)
    assert default_eval_every(600, 512, 16, n_test=1024) == 32
    assert default_eval_every(300, 128, 64, n_test=1024) == 8
    for steps, bs, n_test in [(7, 16, 1024), (100, 8, 10_000), (150, 64, 512), (3, 512, 100), (999, 4, 64)]:
        every = default_eval_every(steps, 8192 // bs, bs, n_test)
        evals = -(-steps // every)  # the last step is evaluated too
        assert every >= default_eval_every(steps, 8192 // bs, bs)  # never finer than without n_test
        assert evals <= 10 + 1 or (evals - 1) * n_test <= 2 * steps * bs  # few, or cheaper than training
    runs = plan_sweep(n_train=8192, batch_sizes=[16, 64], weight_decays=[0], seeds=[0], budget="steps", steps=100,
                      n_test=1024)
    assert [r.eval_every for r in runs] == [10, 8]


def test_dry_run_refuses_an_unusable_out_and_creates_nothing(tmp_path, capsys):
    from landscape.cli import main

    unwritable = readonly_dir(tmp_path)
    if unwritable is None:
        pytest.skip("no unwritable directory on this machine")
    (tmp_path / "taken").write_text("a file")
    argv = ["sweep", "--dry-run", "--batch-sizes", "32", "--weight-decays", "0", "--seeds", "0", "--out"]
    for out, fragment in [(tmp_path / "taken", "is a file"), (tmp_path / "taken" / "runs", "which is a file"),
                          (unwritable / "runs", "cannot write to --out")]:
        assert main([*argv, str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0] and "--out" in err[0], err
    assert main([*argv, str(tmp_path / "new" / "runs")]) == 0
    assert "1 runs, 1 to do" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readonly", "taken"]  # a dry run creates nothing


def test_assign_runs_partitions_and_balances():
    runs = plan_sweep(n_train=4096, batch_sizes=[16, 64, 256, 1024], weight_decays=[0, 1e-4], seeds=[0, 1, 2],
                      budget="steps", steps=100)
    shares = [assign_runs(runs, r, 3) for r in range(3)]
    names = sorted(c.name for share in shares for c in share)
    assert names == sorted(c.name for c in runs)  # every run exactly once
    loads = [sum(c.cost for c in share) for share in shares]
    assert max(loads) / min(loads) < 1.1


def _plan(epochs=2):
    return plan_sweep(model="mlp", n_train=256, batch_sizes=[32, 128], weight_decays=[0.0, 1e-3], seeds=[0],
                      lrs=[0.05], epochs=epochs, target_error=0.5, model_args={"hidden": [16]})


def test_resume_skips_finished_and_redoes_half_written(tiny, tmp_path):
    tr, te = tiny
    configs = _plan()
    first = run_sweep(tmp_path, configs, train_data=tr, test_data=te, progress=False, comm=None)
    assert sorted(first.ran) == sorted(c.name for c in configs) and not first.skipped
    assert len(first.records) == 4
    rec = first.records[0]
    assert {"config", "final", "steps_to_target", "time_to_target", "curve"} <= set(rec)
    victim = tmp_path / configs[1].name
    weights = landscape.load_checkpoint(victim / "model.pt").model.state_dict()
    stamps = {c.name: (tmp_path / c.name / "record.json").stat().st_mtime_ns for c in configs}
    # a run killed before its record was written: record gone, model file truncated
    (victim / "record.json").unlink()
    (victim / "model.pt").write_bytes(b"\x00half")
    second = run_sweep(tmp_path, configs, train_data=tr, test_data=te, progress=False, comm=None)
    assert second.ran == [configs[1].name] and len(second.skipped) == 3
    for c in configs:
        if c.name != configs[1].name:
            assert (tmp_path / c.name / "record.json").stat().st_mtime_ns == stamps[c.name]
    redone = landscape.load_checkpoint(victim / "model.pt").model.state_dict()
    assert all(torch.equal(weights[k], redone[k]) for k in weights)  # the redo is the same deterministic run
    assert len(load_records(tmp_path)) == 4
    with pytest.raises(LandscapeError, match="other settings"):
        run_sweep(tmp_path, _plan(epochs=3), train_data=tr, test_data=te, progress=False, comm=None)


@pytest.mark.skipif(shutil.which("mpiexec", path=str(Path(sys.executable).parent)) is None,
                    reason="mpiexec not installed in this environment")
def test_cli_sweep_under_mpirun(tmp_path):
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    cmd = [mpiexec, "-n", "2", sys.executable, "-m", "landscape", "sweep", "--out", str(tmp_path),
           "--model", "mlp", "--batch-sizes", "256,512", "--weight-decays", "0", "--seeds", "0,1",
           "--steps", "3", "--budget", "steps", "--target-error", "0.9", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = load_records(tmp_path)
    assert len(records) == 4 and {r["config"]["steps"] for r in records} == {3}
    assert "4 runs trained" in proc.stdout and "steps to result" in proc.stdout
