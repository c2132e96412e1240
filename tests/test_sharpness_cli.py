"""``landscape sharpness``: every measure to JSON, matching the library, weights untouched."""
from __future__ import annotations

import json

import pytest
import torch

from landscape import build_model, get_dataset, load_checkpoint, save_checkpoint
from landscape.cli import main
from landscape.data import subset_indices
from landscape.sharpness import keskar, pac_bayes_sigma


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(1)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[16])
    d = get_dataset("digits", "train")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(60):  # a few steps: PAC-Bayes needs an error well below 0.9
        xb, yb = d.inputs[i * 16 % 1400:][:64], d.targets[i * 16 % 1400:][:64]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    path = tmp_path_factory.mktemp("ckpt") / "mlp.pt"
    save_checkpoint(path, model, {"dataset": "digits"})
    return path


def test_all_measures_to_json(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["sharpness", "--ckpt", str(ckpt), "--measure", "keskar", "adaptive", "average", "pacbayes",
               "--samples", "150", "--max-iter", "3", "--steps", "3", "--mc-samples", "3", "--bisect-tol", "0.1",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    rec = json.loads((out / "sharpness.json").read_text())
    assert set(rec["measures"]) == {"keskar", "adaptive", "average", "pacbayes"}
    d = get_dataset("digits", "train")
    idx = subset_indices(len(d), 150, 0)
    data = (d.inputs[idx], d.targets[idx])
    model = load_checkpoint(ckpt).model
    ref = keskar(model, data, eps=1e-3, max_iter=3)
    assert rec["measures"]["keskar"]["value"] == pytest.approx(ref.value, rel=1e-6)
    assert rec["measures"]["keskar"]["settings"]["eps"] == 1e-3
    pb = pac_bayes_sigma(model, data, n_probes=3, tol=0.1)
    assert rec["measures"]["pacbayes"]["value"] == pytest.approx(pb.sigma, rel=1e-9)
    assert rec["measures"]["average"]["settings"]["kind"] == "average"
    assert rec["measures"]["adaptive"]["settings"]["p"] == "2"
    assert "keskar (full, eps 0.001)" in capsys.readouterr().out


def test_options_reach_the_measures(ckpt, tmp_path):
    out = tmp_path / "opts"
    assert main(["sharpness", "--ckpt", str(ckpt), "--measure", "adaptive", "keskar", "--p", "inf", "--no-adaptive",
                 "--m", "50", "--rho", "0.01", "--steps", "2", "--subspace-dim", "5", "--max-iter", "2",
                 "--samples", "100", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads((out / "sharpness.json").read_text())["measures"]
    assert rec["adaptive"]["settings"] | {} == rec["adaptive"]["settings"]
    s = rec["adaptive"]["settings"]
    assert (s["p"], s["adaptive"], s["m"], s["rho"]) == ("inf", False, 50, 0.01)
    assert rec["adaptive"]["n_groups"] == 2
    assert rec["keskar"]["settings"]["subspace_dim"] == 5


def test_dtype_float64_measures_a_float64_copy(ckpt, tmp_path):
    out = tmp_path / "f64"
    assert main(["sharpness", "--ckpt", str(ckpt), "--measure", "keskar", "--max-iter", "2", "--samples", "100",
                 "--dtype", "float64", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads((out / "sharpness.json").read_text())
    d = get_dataset("digits", "train")
    idx = subset_indices(len(d), 100, 0)
    ref = keskar(load_checkpoint(ckpt).model.double(), (d.inputs[idx].double(), d.targets[idx]), eps=1e-3, max_iter=2)
    assert rec["dtype"] == "float64" and rec["measures"]["keskar"]["value"] == pytest.approx(ref.value, rel=1e-9)


def test_bad_input_is_a_clean_error(ckpt, tmp_path, capsys):
    assert main(["sharpness", "--ckpt", str(tmp_path / "missing.pt"), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sharpness", "--ckpt", str(ckpt), "--p", "1"])


def test_a_kill_keeps_finished_measures_and_the_rerun_computes_only_the_rest(ckpt, tmp_path, capsys, monkeypatch):
    import landscape.sharpness as ls

    out = tmp_path / "resume"
    cmd = ["sharpness", "--ckpt", str(ckpt), "--measure", "keskar", "pacbayes", "--max-iter", "2", "--samples", "100",
           "--mc-samples", "2", "--bisect-tol", "0.2", "--out", str(out), "--no-progress"]

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    def refuse(*_, **__):
        raise AssertionError("recomputed a measure the file already holds")

    with monkeypatch.context() as m:
        m.setattr(ls, "pac_bayes_sigma", interrupted)
        assert main(cmd) == 130
    kept = json.loads((out / "sharpness.json").read_text())["measures"]
    assert set(kept) == {"keskar"}
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(ls, "keskar", refuse)
        assert main(cmd) == 0
    assert "(reused: same checkpoint, data and settings)" in capsys.readouterr().out
    done = json.loads((out / "sharpness.json").read_text())["measures"]
    assert done["keskar"] == kept["keskar"] and done["pacbayes"]["request"]["bisect_tol"] == 0.2
    with monkeypatch.context() as m:  # another eps is another number: computed again
        m.setattr(ls, "pac_bayes_sigma", refuse)
        assert main(cmd + ["--eps", "5e-4"]) == 0
    assert json.loads((out / "sharpness.json").read_text())["measures"]["keskar"]["settings"]["eps"] == 5e-4
