"""hf: and timm: loaders, offline, on tiny randomly initialised models the test saves itself."""
import json

import pytest
import torch

import landscape
from landscape.cli import main
from landscape.errors import LandscapeError


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=128, n_positions=64, n_embd=8, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(d)
    return d


def test_hf_directory_loads_as_a_logits_model_and_round_trips_a_checkpoint(hf_dir, tmp_path):
    import transformers

    model = landscape.build_model(f"hf:{hf_dir}").eval()
    reference = transformers.GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    x = torch.randint(0, 128, (2, 10))
    with torch.no_grad():
        assert torch.allclose(model(x), reference(input_ids=x).logits, atol=1e-5)
        assert torch.allclose(model({"input_ids": x}), reference(input_ids=x).logits, atol=1e-5)
    path = landscape.save_checkpoint(tmp_path / "hf.pt", model, {"dataset": "pysrc"})
    assert torch.load(path, weights_only=True)["model"] == f"hf:{hf_dir}"
    back = landscape.load_checkpoint(path).model
    torch.save(reference.state_dict(), tmp_path / "bare.pt")  # the hub model's own state dict, as --ckpt
    bare = landscape.load_checkpoint(tmp_path / "bare.pt", model=f"hf:{hf_dir}").model
    with torch.no_grad():
        assert torch.equal(back(x), model(x)) and torch.allclose(bare(x), model(x))


def test_hf_model_through_landscape_hessian(hf_dir, tmp_path, capsys, monkeypatch):
    """Second derivatives through a transformers model, from the command line, by the checkpoint alone."""
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    model = landscape.build_model(f"hf:{hf_dir}")
    landscape.save_checkpoint(tmp_path / "hf.pt", model, {"dataset": "pysrc"})
    code = main(["hessian", "--ckpt", str(tmp_path / "hf.pt"), "--samples", "4", "--k", "1", "--tol", "1e-3",
                 "--out", str(tmp_path / "h"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    top = json.loads((tmp_path / "h" / "hessian.json").read_text())["largest_eigenvalues"]["values"][0]
    assert top > 0


def test_hf_directory_that_is_not_one_is_one_line():
    pytest.importorskip("transformers")
    with pytest.raises(LandscapeError, match="not a directory written by save_pretrained"):
        landscape.build_model("hf:/nonexistent/dir")


def test_timm_model_or_a_clear_install_message(tmp_path):
    try:
        import timm  # noqa: F401
    except Exception:  # absent, or installed against another torch (torchvision's ops fail to load)
        with pytest.raises(LandscapeError, match=r"install the timm extra"):
            landscape.build_model("timm:resnet18")
        pytest.skip("timm does not import beside this torch; the loader says which extra to install")
    model = landscape.build_model("timm:resnet18", num_classes=3).eval()
    path = landscape.save_checkpoint(tmp_path / "t.pt", model)
    torch.save(model.net.state_dict(), tmp_path / "weights.pt")  # a plain timm state dict, as --ckpt gives it
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(landscape.load_checkpoint(path).model(x), model(x))
        bare = landscape.load_checkpoint(tmp_path / "weights.pt", model="timm:resnet18", model_args={"num_classes": 3})
        assert torch.equal(bare.model(x), model(x))
