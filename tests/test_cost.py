"""landscape.cost: plans count the work each command will do, and --dry-run does none of it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.cost import Part, Plan, blocked_seconds_per_product, format_seconds, hessian_plan, lanczos_steps


def test_plan_sums_parts_and_shares_them_among_workers():
    plan = Plan("surface", [Part("points", 100, 50, "point", 1e-3), Part("eig", 10, 20, "hvp", 2e-3)], workers=2)
    assert plan.seconds == pytest.approx((100 * 50 * 1e-3 + 10 * 20 * 2e-3) / 2)
    text = str(plan)
    assert "100 points x 50 samples" in text and "10 Hessian-vector products x 20 samples" in text
    assert "on 2 processes" in text
    assert [format_seconds(s) for s in (3.21, 45, 600, 7200, math.inf)] == ["3.2 s", "45 s", "10.0 min", "2.0 h",
                                                                            "unknown"]


def test_blocked_products_share_the_first_pass():
    costs = {"hvp": 3.0, "hvp_second": 1.0}  # F = 2, S = 1 per sample
    assert blocked_seconds_per_product(8, costs) == pytest.approx((2 + 8) / 8)
    assert blocked_seconds_per_product(10, costs, block=8) == pytest.approx((2 * 2 + 10) / 10)
    assert blocked_seconds_per_product(1, costs) == pytest.approx(3.0)
    assert lanczos_steps(5, "largest", 10_000, None) == (14, 300)  # 11.8-13.5 measured on trained convnets
    assert lanczos_steps(5, "largest", 10, None) == (10, 10)  # never more than the parameters


def test_hessian_plan_counts_products(small_digits):
    from landscape.hessian import HessianOperator

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    op = HessianOperator(model, small_digits[0])
    plan = hessian_plan(op, small_digits[0], ends=["largest"], k=3, method="lanczos", max_iter=None, trace=True, probes=20,
                        density=True, density_iter=30, density_runs=2, float32_check=True, pilot_samples=64)
    by = {p.what.split(" (")[0]: p for p in plan.parts}
    assert by["trace"].passes == 20 and by["density"].passes == 60
    assert by["largest 3 eigenvalues"].passes == 4 + 2 * 3
    # the solver runs on kept gradient graphs (a few MiB here): built once, then a second backward per product
    assert by["largest: gradient graphs"].passes == 1 and by["largest: gradient graphs"].kind == "gradient"
    assert "gradient graphs" in plan.pilot and "a product on them" in plan.pilot
    assert all(p.samples == 200 for p in plan.parts if "float32" not in p.what)
    assert all(np.isfinite(p.seconds_per_sample) and p.seconds_per_sample > 0 for p in plan.parts)
    assert plan.seconds > 0 and "Hessian-vector product" in plan.pilot


def test_dry_run_does_no_work(trained_ckpt, tmp_path, capsys):
    out = tmp_path / "surf"
    assert main(["surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:7", "--y", "-1:1:3", "--samples", "100",
                 "--out", str(out), "--dry-run", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "plan (surface)" in text and "21 points x 200 samples" in text and "dry run" in text
    assert not list(out.glob("*.h5"))
    hess = tmp_path / "hess"
    assert main(["hessian", "--ckpt", str(trained_ckpt), "--samples", "64", "--k", "2", "--trace", "--density",
                 "--out", str(hess), "--dry-run", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "plan (hessian)" in text and "density (SLQ, 3 runs x 40 steps): 120 Hessian-vector products x 64" in text
    assert not (hess / "hessian.json").exists()
    assert main(["hessian", "--ckpt", str(trained_ckpt), "--samples", "64", "--density", "--density-full",
                 "--no-eigenvalues", "--out", str(hess), "--dry-run"]) == 0
    assert "10 runs x 80 steps" in capsys.readouterr().out
    sharp = tmp_path / "sharp"
    assert main(["sharpness", "--ckpt", str(trained_ckpt), "--samples", "64", "--measure", "keskar", "average",
                 "--out", str(sharp), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "keskar: 12 gradient passes x 64 samples" in text and "average: 21 forward passes x 64" in text
    assert not (sharp / "sharpness.json").exists()


def test_plan_of_a_resume_counts_journal_points_and_leaves_the_warning_to_the_run(trained_ckpt, tmp_path, capfd):
    import json

    import h5py

    args = ["surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:4", "--samples", "50", "--splits", "train",
            "--threads", "1", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    h5 = tmp_path / "random_1d.h5"
    with h5py.File(h5, "a") as f:  # points 0 and 1 undone; point 0 only in the journal, behind a torn line
        f["done"][:2] = False
        key, loss = f.attrs["journal_key"], float(f["train_loss"][0])
    lines = [{"journal": "landscape-surface-journal", "key": key}, {"p": 0, "v": {"train_loss": loss, "train_acc": 0.5}}]
    h5.with_name(h5.name + ".journal").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"p": 1, "v": {"tr')
    capfd.readouterr()
    assert main([*args, "--dry-run"]) == 0
    out, err = capfd.readouterr()
    assert "3 of 4 points already computed" in out and err == ""  # the journal's point counted, silently
    assert main(args) == 0  # the run reads the journal once more: its one warning
    warnings = capfd.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and "dropped 1 damaged line(s)" in warnings[0], warnings


class _Counted(torch.utils.data.Dataset):
    """A large map-style dataset that counts the items read from it."""

    def __init__(self, n: int):
        self.n, self.reads = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        self.reads += 1
        return torch.full((4,), float(i % 7)), i % 3


class _Stream(torch.utils.data.IterableDataset):
    """A stream that fails past its first ``limit`` items: a pilot must stop reading before."""

    def __init__(self, limit: int):
        self.limit = limit

    def __iter__(self):
        for i in range(10 ** 9):
            if i >= self.limit:
                raise AssertionError(f"read past item {self.limit}")
            yield torch.full((4,), float(i % 7)), i % 3


def test_pilot_reads_only_the_head_of_a_loader_or_a_stream():
    from torch.utils.data import DataLoader

    from landscape.cost import pass_seconds_per_sample, sharpness_plan

    model = torch.nn.Linear(4, 3)
    data = _Counted(100_000)
    plan = sharpness_plan(model, DataLoader(data, batch_size=50), ["average"], {"mc_samples": 2}, pilot_samples=120)
    assert data.reads == 150  # three batches of 50 hold the 120 pilot samples; the other 99,850 unread
    assert plan.parts[0].samples == 100_000 and "pilot of 120 samples" in plan.pilot
    data.reads = 0
    sharpness_plan(model, data, ["average"], {"mc_samples": 2}, pilot_samples=120)  # map-style: by index
    assert data.reads == 120
    seconds = pass_seconds_per_sample(model, DataLoader(_Stream(200), batch_size=64), ["forward"], pilot_samples=100)
    assert seconds["forward"] > 0
    assert pass_seconds_per_sample(model, _Stream(200), ["gradient"], pilot_samples=100)["gradient"] > 0


def test_surface_pilot_runs_at_the_remembered_batch_size_and_layout(trained_ckpt, tmp_path, monkeypatch, capsys):
    """When a run already measured this model's batch size and layout, the dry run's pilot uses them
    (and reads one such batch per split), instead of batch 256 in the contiguous layout."""
    import landscape.surface
    from landscape import load_checkpoint
    from landscape.evaluation import _cached, remembered_choices

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    model = load_checkpoint(trained_ckpt).model
    head = landscape.get_dataset("digits", "train").inputs[:1]
    assert remembered_choices(model, head) == (None, None)
    _cached("batch_size_interleaved", model, head, lambda: 512)
    _cached("layout", model, head, lambda: "channels_last")
    assert remembered_choices(model, head) == (512, "channels_last")
    seen = []
    real = landscape.surface.compute_surface

    def spy(model, directions, data, *args, **kw):
        seen.append((kw["batch_size"], kw["layout"], {s: len(v[0]) for s, v in data.items()}))
        return real(model, directions, data, *args, **kw)

    monkeypatch.setattr(landscape.surface, "compute_surface", spy)
    assert main(["surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:5", "--out", str(tmp_path / "s"),
                 "--dry-run", "--no-progress"]) == 0
    assert seen and all(s[:2] == (512, "channels_last") for s in seen)
    assert seen[0][2] == {"train": 512, "test": 360}  # one batch of 512 per split (the test split has 360)
    assert "plan (surface)" in capsys.readouterr().out
