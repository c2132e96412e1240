"""Import paths for --model, --data and --loss: a user's own module through the CLI, and every bad path as one line."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import landscape
from conftest import mpirun_path
from landscape.cli import main
from landscape.errors import LandscapeError

USER_MODULE = "byom_user_models"
SOURCE = textwrap.dedent('''
    """A user's own model, data and loss: nothing here comes from landscape."""
    import torch
    import torch.nn.functional as F
    from torch import nn


    class TinyMixer(nn.Module):
        """Mixes 4 tokens of 3 features: a token-mixing and a channel-mixing linear layer."""

        def __init__(self, width: int = 6, num_classes: int = 3):
            super().__init__()
            self.token = nn.Linear(4, 4)
            self.channel = nn.Linear(3, width)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            h = x + self.token(x.transpose(1, 2)).transpose(1, 2)
            return self.head(torch.tanh(self.channel(h)).mean(1))


    def make_data(split="train"):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        x = torch.randn(96, 4, 3, generator=g)
        y = (x[:, :, 0].sum(1) > 0).long() + (x[:, 0, 1] > 1).long()
        return x, y


    def train_only():
        return make_data("train")


    def smooth_ce(outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=0.1)


    def broken(**kwargs):
        raise RuntimeError("the factory failed on purpose")


    def not_a_model(**kwargs):
        return 42


    def text_data():
        return "not data"


    NOT_CALLABLE = 3
''')


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    (d / f"{USER_MODULE}.py").write_text(SOURCE)
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))
    sys.modules.pop(USER_MODULE, None)


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_register_model_with_and_without_a_name():
    from landscape.models import build_model, list_models, register_model

    @register_model
    def byom_plain(width: int = 3):
        return torch.nn.Linear(2, width)

    @register_model("byom-named")
    def whatever(width: int = 4):
        return torch.nn.Linear(2, width)

    @register_model(name="byom-keyword")
    def other():
        return torch.nn.Linear(2, 1)

    assert {"byom_plain", "byom-named", "byom-keyword"} <= set(list_models())
    assert build_model("byom-named", width=5).out_features == 5 and whatever(2).out_features == 2
    assert build_model("byom-named").landscape_spec == {"name": "byom-named", "args": {}}
    with pytest.raises(LandscapeError, match="without ':'"):
        register_model("a:b")


def test_build_model_and_data_by_import_path(user_dir, tmp_path):
    model = landscape.build_model(f"{USER_MODULE}:TinyMixer", width=5)
    assert model.channel.out_features == 5
    assert model.landscape_spec == {"name": f"{USER_MODULE}:TinyMixer", "args": {"width": 5}}
    data = landscape.get_dataset(f"{USER_MODULE}:make_data", "test")
    assert data.inputs.shape == (96, 4, 3) and data.num_classes == 3 and data.name == f"{USER_MODULE}:make_data"
    path = landscape.save_checkpoint(tmp_path / "m.pt", model, {"dataset": data.name})
    back = landscape.load_checkpoint(path)  # rebuilt from the recorded path and arguments
    assert back.model.channel.out_features == 5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.model.state_dict().values()))


def test_train_accepts_any_module_and_says_how_to_reload(user_dir, tmp_path):
    from landscape.train import train

    module = __import__(USER_MODULE)
    model = module.TinyMixer()  # built by the user, not by build_model
    with pytest.warns(UserWarning, match="weights only"):
        result = train(model, module.make_data(), module.make_data("test"), batch_size=32, epochs=1,
                       out_dir=tmp_path, progress=False)
    with pytest.raises(LandscapeError, match=f"--model {USER_MODULE}:TinyMixer"):
        landscape.load_checkpoint(result.checkpoint)
    back = landscape.load_checkpoint(result.checkpoint, model=module.TinyMixer())
    assert back.meta["n_train"] == 96 and torch.equal(back.model.head.weight, model.head.weight)


def test_user_module_through_train_hessian_sharpness_report_and_plot(user_dir, tmp_path, capsys, monkeypatch):
    """Trained by import path; every later command rebuilds model, data and loss from the checkpoint alone."""
    monkeypatch.chdir(user_dir)
    run = tmp_path / "runs" / "a"
    code, out, err = _cli(capsys, "train", "--model", f"{USER_MODULE}:TinyMixer", "--model-args", '{"width": 5}',
                          "--data", f"{USER_MODULE}:make_data", "--loss", f"{USER_MODULE}:smooth_ce",
                          "--batch-size", "32", "--epochs", "3", "--out", run, "--no-progress")
    assert code == 0, err
    ckpt = torch.load(run / "model.pt", weights_only=True)
    assert ckpt["model"] == f"{USER_MODULE}:TinyMixer" and ckpt["model_args"] == {"width": 5, "num_classes": 3}
    assert ckpt["meta"]["dataset"] == f"{USER_MODULE}:make_data" and ckpt["meta"]["loss"] == f"{USER_MODULE}:smooth_ce"

    code, out, err = _cli(capsys, "hessian", "--ckpt", run / "model.pt", "--k", "2", "--out", tmp_path / "h",
                          "--no-progress")
    assert code == 0, err
    record = json.loads((tmp_path / "h" / "hessian.json").read_text())
    assert record["operator"]["loss"] == f"{USER_MODULE}:smooth_ce"
    top = record["largest_eigenvalues"]["values"][0]
    from landscape.hessian.hvp import HessianOperator

    back = landscape.load_checkpoint(run / "model.pt")
    module = __import__(USER_MODULE)
    op = HessianOperator(back.model, module.make_data(), module.smooth_ce)
    dense = np.stack([op.mv(torch.eye(op.num_params, dtype=torch.float64)[i]).cpu().numpy()
                      for i in range(op.num_params)])
    assert abs(top - np.linalg.eigvalsh((dense + dense.T) / 2)[-1]) < 1e-4 * max(1.0, abs(top))

    code, out, err = _cli(capsys, "sharpness", "--ckpt", run / "model.pt", "--measure", "keskar", "--max-iter", "2",
                          "--out", tmp_path / "s", "--no-progress")
    assert code == 0 and "keskar" in out, err
    code, out, err = _cli(capsys, "report", tmp_path / "runs", "--measures", "top_eig", "--no-progress")
    assert code == 0 and "top_eig" in out, err

    mpirun = mpirun_path()
    surface_args = ["--ckpt", run / "model.pt", "--x", "-1:1:5", "--out", tmp_path / "p", "--no-progress"]
    flags = ["--model", f"{USER_MODULE}:TinyMixer", "--model-args", '{"width": 5, "num_classes": 3}',
             "--data", f"{USER_MODULE}:make_data", "--loss", f"{USER_MODULE}:smooth_ce"]
    if mpirun:
        cmd = [mpirun, "-n", "2", sys.executable, "-m", "landscape", "plot", *map(str, surface_args + flags),
               "--threads", "1"]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=user_dir, timeout=300,
                           env={**__import__("os").environ, "MPLBACKEND": "Agg"})
        assert r.returncode == 0, r.stderr[-2000:]
    else:
        assert _cli(capsys, "plot", *surface_args, *flags)[0] == 0
    first = landscape.load_surface(tmp_path / "p" / "random_1d.h5")
    assert first.done.all() and (not mpirun or first.attrs["ranks"] == 2)
    # the rerun names nothing but the checkpoint: model, data and loss come from it, and the file resumes as is
    import landscape.surface as surface_module

    calls = []
    original = surface_module.compute_surface
    monkeypatch.setattr("landscape.workflow.compute_surface",
                        lambda *a, **k: calls.append(k["loss"]) or original(*a, **k))
    code, out, err = _cli(capsys, "plot", *surface_args)
    assert code == 0, err
    again = landscape.load_surface(tmp_path / "p" / "random_1d.h5")
    assert calls == [f"{USER_MODULE}:smooth_ce"] and np.array_equal(again["train_loss"], first["train_loss"])


BAD = [
    (["--model", "no_such_module_xyz:Net"], "no module named 'no_such_module_xyz'"),
    (["--model", f"{USER_MODULE}:Missing"], "has no attribute 'Missing'"),
    (["--model", f"{USER_MODULE}:broken"], "raised RuntimeError: the factory failed on purpose"),
    (["--model", f"{USER_MODULE}:not_a_model"], "returned a int, not a torch.nn.Module"),
    (["--model", f"{USER_MODULE}:NOT_CALLABLE"], "not something to call"),
    (["--model", f"{USER_MODULE}:TinyMixer", "--model-args", '{"depth": 2}'], "takes no argument(s) ['depth']"),
    (["--model", "bad path:x"], "not an import path"),
    (["--data", "no_such_module_xyz:data"], "no module named 'no_such_module_xyz'"),
    (["--data", f"{USER_MODULE}:Missing"], "has no attribute 'Missing'"),
    (["--data", f"{USER_MODULE}:broken"], "raised RuntimeError"),
    (["--data", f"{USER_MODULE}:text_data"], "returned a str"),
    (["--data", f"{USER_MODULE}:NOT_CALLABLE"], "not something to call"),
    (["--loss", "no_such_module_xyz:fn"], "no module named 'no_such_module_xyz'"),
    (["--loss", f"{USER_MODULE}:Missing"], "has no attribute 'Missing'"),
    (["--loss", f"{USER_MODULE}:NOT_CALLABLE"], "not a callable"),
    (["--model", "hf:/nonexistent/dir"], "hf"),
]


@pytest.mark.parametrize("flags, fragment", BAD, ids=[f"{f[0][2:]}-{f[1]}" for f, _ in BAD])
def test_every_bad_import_path_is_one_line_and_exit_2(user_dir, tmp_path, capsys, monkeypatch, flags, fragment):
    monkeypatch.chdir(user_dir)
    defaults = {"--model": f"{USER_MODULE}:TinyMixer", "--data": f"{USER_MODULE}:make_data"}
    defaults.update(dict(zip(flags[::2], flags[1::2])))
    argv = ["train", *[v for kv in defaults.items() for v in kv], "--steps", "1", "--batch-size", "8",
            "--out", tmp_path, "--no-progress"]
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_test_split_is_named(user_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(user_dir)
    with pytest.raises(LandscapeError, match="return {'train'"):
        landscape.get_dataset(f"{USER_MODULE}:train_only", "test")
    code, out, err = _cli(capsys, "train", "--model", f"{USER_MODULE}:TinyMixer", "--data", f"{USER_MODULE}:train_only",
                          "--steps", "2", "--batch-size", "8", "--out", tmp_path, "--no-progress")
    assert code == 0 and "no test split" in out, err
