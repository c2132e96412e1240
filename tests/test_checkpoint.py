"""Every checkpoint format loads to the same weights; pickles that run code are refused."""
import os

import pytest
import torch

import landscape
from conftest import run_cli
from landscape.checkpoint import save_safetensors
from landscape.errors import LandscapeError


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return landscape.build_model("convnet", channels=(4, 8, 8))


def test_native_round_trip_with_meta(tmp_path, model):
    path = landscape.save_checkpoint(tmp_path / "m.pt", model, {"batch_size": 16, "weight_decay": 5e-4,
                                                                 "shape": (1, 8, 8), "torch": torch.__version__})
    ck = landscape.load_checkpoint(path)
    assert _same(ck.model, model) and not ck.model.training
    assert ck.meta["batch_size"] == 16 and ck.meta["weight_decay"] == 5e-4 and ck.meta["model"] == "convnet"
    assert ck.meta["torch"] == str(torch.__version__) and type(ck.meta["torch"]) is str
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "landscape-checkpoint" and raw["version"] == 1 and raw["model"] == "convnet"
    assert len(ck.sha256) == 64


def test_bare_state_dict_needs_and_takes_a_model_name(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(LandscapeError, match="--model"):
        landscape.load_checkpoint(tmp_path / "bare.pt")
    ck = landscape.load_checkpoint(tmp_path / "bare.pt", model="convnet", model_args={"channels": [4, 8, 8]})
    assert _same(ck.model, model)


def test_old_loss_landscape_t7_and_module_prefix(tmp_path, model):
    prefixed = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": prefixed, "epoch": 300, "acc": 93.1}, tmp_path / "model_300.t7")
    ck = landscape.load_checkpoint(tmp_path / "model_300.t7", model="convnet", model_args={"channels": [4, 8, 8]})
    assert _same(ck.model, model) and ck.meta["epoch"] == 300


def test_safetensors_with_and_without_header(tmp_path, model):
    save_safetensors(tmp_path / "m.safetensors", model, {"batch_size": 8})
    ck = landscape.load_checkpoint(tmp_path / "m.safetensors")
    assert _same(ck.model, model) and ck.meta["batch_size"] == 8
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "plain.safetensors"))
    ck = landscape.load_checkpoint(tmp_path / "plain.safetensors", model=model.__class__ and "convnet",
                                   model_args={"channels": [4, 8, 8]})
    assert _same(ck.model, model)


def test_wrong_architecture_is_one_clear_error(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(LandscapeError, match="does not fit.*; check --model and --model-args$"):
        landscape.load_checkpoint(tmp_path / "bare.pt", model="mlp")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(LandscapeError, match="refusing"):
        landscape.load_checkpoint(tmp_path / "evil.pt", model="convnet")
    assert not marker.exists()
    r = run_cli("surface", "--ckpt", str(tmp_path / "evil.pt"), "--model", "convnet", "--dataset", "digits")
    assert r.returncode == 2 and "refusing" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"not a checkpoint\n", bytes(range(256)) * 4])
def test_a_file_that_is_not_a_checkpoint_is_named_as_such(tmp_path, content):
    path = tmp_path / "other.pt"
    path.write_bytes(content)
    with pytest.raises(LandscapeError, match="cannot read .* as a checkpoint: not a torch.save file") as info:
        landscape.load_checkpoint(path, model="convnet")
    assert "\n" not in str(info.value) and "arbitrary" not in str(info.value)


def test_a_checkpoint_of_a_renamed_model_is_told_its_new_name(tmp_path):
    from landscape.models.registry import renamed_from

    assert renamed_from("vgg9") == ["vgg9_gap"] and renamed_from("convnet") == []
    torch.manual_seed(0)
    old = landscape.build_model("vgg9_gap", input_shape=(3, 8, 8))
    old.landscape_spec = {"name": "vgg9", "args": {"input_shape": (3, 8, 8), "num_classes": 10}}  # as saved then
    path = landscape.save_checkpoint(tmp_path / "old.pt", old, {"dataset": "cifar10"})
    with pytest.raises(LandscapeError, match=r"does not fit model VGG: .*this looks like vgg9_gap \(saved when that "
                                             r"model was called 'vgg9'\): pass --model vgg9_gap$"):
        landscape.load_checkpoint(path)
    assert _same(landscape.load_checkpoint(path, model="vgg9_gap").model, old)
