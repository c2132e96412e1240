"""Datasets: built-ins offline, file formats read from synthetic files, clear missing-root errors."""
import gzip
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape.data import as_tensors, get_dataset, subset_indices
from landscape.errors import LandscapeError


def test_digits_splits_are_disjoint_and_normalized(digits):
    tr, te = digits
    assert (len(tr), len(te)) == (1437, 360) and tr.input_shape == (1, 8, 8) and tr.num_classes == 10
    assert abs(float(tr.inputs.mean())) < 0.05 and abs(float(tr.inputs.std()) - 1) < 0.05
    rows = {tuple(r) for r in tr.inputs.reshape(len(tr), -1).numpy().round(4).tolist()}
    overlap = sum(tuple(r) in rows for r in te.inputs.reshape(len(te), -1).numpy().round(4).tolist())
    assert overlap < 5  # digits has a handful of duplicate images, no more


def test_mnist1d_generated_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    tr = get_dataset("mnist1d", "train")
    assert (len(tr), tr.input_shape) == (4000, (1, 40))
    assert (tmp_path / "mnist1d-v1.npz").exists()
    again = get_dataset("mnist1d", "train")
    assert torch.equal(tr.inputs, again.inputs)


def _write_idx(path, array, gz):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28))
    labels = np.arange(7) % 10
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
    d = get_dataset("mnist", "test", root=tmp_path)
    assert d.inputs.shape == (7, 1, 28, 28) and torch.equal(d.targets, torch.arange(7))
    expect = (images[3] / 255.0 - 0.1307) / 0.3081
    assert np.allclose(d.inputs[3, 0].numpy(), expect, atol=1e-5)


def test_cifar10_pickle_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 4]}, f)
    tr = get_dataset("cifar10", "train", root=tmp_path)
    assert tr.inputs.shape == (20, 3, 32, 32) and tr.num_classes == 10


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as f:
            pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(LandscapeError, match="refusing"):
        get_dataset("cifar10", "train", root=tmp_path)


def test_missing_root_names_expected_files(tmp_path):
    with pytest.raises(LandscapeError, match="--data-root"):
        get_dataset("cifar10", "train")
    with pytest.raises(LandscapeError, match="cifar-10-batches-py"):
        get_dataset("cifar10", "train", root=tmp_path)
    with pytest.raises(LandscapeError, match="unknown dataset"):
        get_dataset("imagenet")


def test_any_data_form_gives_the_same_tensors():
    x, y = torch.randn(10, 3), torch.arange(10)
    for form in ((x, y), TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=3)):
        a, b = as_tensors(form)
        assert torch.equal(a, x) and torch.equal(b, y)


def test_subset_is_fixed_and_sorted():
    a, b = subset_indices(100, 10, seed=1), subset_indices(100, 10, seed=1)
    assert torch.equal(a, b) and torch.all(a[1:] > a[:-1])
    assert subset_indices(100, None) is None and subset_indices(100, 500) is None


# ---------------------------------------------------------------- a user's data through the CLI, never read whole
LAZY_MODULE = "lazy_user_data"
LAZY_SOURCE = '''
"""A user's Dataset that counts the distinct items read, and raises past a limit the test sets."""
import torch
from torch.utils.data import DataLoader, Dataset

N = 1200
READS = {"train": set(), "test": set()}
LIMIT = {"n": None}


class Counted(Dataset):
    def __init__(self, split="train"):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        self.split = split
        self.x = torch.randn(N, 1, 8, 8, generator=g)
        self.y = torch.randint(0, 10, (N,), generator=g)

    def __len__(self):
        return N

    def __getitem__(self, i):
        READS[self.split].add(int(i))
        if LIMIT["n"] is not None and len(READS[self.split]) > LIMIT["n"]:
            raise RuntimeError(f"read {len(READS[self.split])} distinct {self.split} items, more than {LIMIT['n']}")
        return self.x[i], self.y[i]


def counted(split="train"):
    return Counted(split)


def loader(split="train"):
    return DataLoader(Counted(split), batch_size=50, shuffle=(split == "train"))


def tensors(split="train"):
    d = Counted(split)
    return d.x, d.y
'''
HEAD_LIMIT = 300  # distinct items a dry run may read per split: the pilot's 256 and the description's 8


@pytest.fixture(scope="module")
def lazy_user(tmp_path_factory):
    """(module, checkpoint) with the module importable by name, as `--dataset lazy_user_data:counted` needs."""
    import sys

    from landscape import build_model, save_checkpoint

    d = tmp_path_factory.mktemp("lazy")
    (d / f"{LAZY_MODULE}.py").write_text(LAZY_SOURCE)
    sys.path.insert(0, str(d))
    torch.manual_seed(0)
    model = build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=[3, 6, 6], pool=1)
    ckpt = save_checkpoint(d / "m.pt", model, {"dataset": f"{LAZY_MODULE}:counted"})
    module = __import__(LAZY_MODULE)
    yield module, ckpt
    sys.path.remove(str(d))
    sys.modules.pop(LAZY_MODULE, None)


def _reset(module, limit):
    for reads in module.READS.values():
        reads.clear()
    module.LIMIT["n"] = limit


@pytest.mark.parametrize("command", [["surface", "--x", "-1:1:3"], ["hessian", "--trace"], ["sharpness"]],
                         ids=lambda c: c[0])
def test_dry_runs_read_only_a_head_of_user_data(lazy_user, tmp_path, capsys, command):
    from landscape.cli import main

    module, ckpt = lazy_user
    _reset(module, HEAD_LIMIT)
    try:
        rc = main([*command, "--ckpt", str(ckpt), "--dry-run", "--out", str(tmp_path), "--no-progress"])
    finally:
        module.LIMIT["n"] = None
    out, err = capsys.readouterr()
    assert rc == 0 and "dry run" in out, err
    assert 0 < len(module.READS["train"]) <= HEAD_LIMIT < module.N


def test_streamed_user_data_gives_the_numbers_of_the_same_tensors(lazy_user, tmp_path, capsys):
    """--data-on stream over a Dataset and a (shuffling) DataLoader vs the same data as tensors, resident:
    bit-identical on a CPU at the same batch size (the library's promise), --samples subset included."""
    import json

    import landscape
    from landscape.cli import main

    module, ckpt = lazy_user
    _reset(module, None)
    common = ["--ckpt", str(ckpt), "--batch-size", "100", "--no-progress"]
    got = {}
    for name, on in (("counted", "stream"), ("loader", "stream"), ("tensors", "device")):
        data = ["--dataset", f"{LAZY_MODULE}:{name}", "--data-on", on]
        assert main(["surface", *common, *data, "--x", "-1:1:3", "--layout", "contiguous",
                     "--out", str(tmp_path / f"s_{name}")]) == 0
        surface = landscape.load_surface(tmp_path / f"s_{name}" / "random_1d.h5")
        assert main(["hessian", *common, *data, "--k", "2", "--max-iter", "12", "--samples", "500",
                     "--out", str(tmp_path / f"h_{name}")]) == 0
        record = json.loads((tmp_path / f"h_{name}" / "hessian.json").read_text())
        got[name] = (surface["train_loss"].tolist(), surface["test_loss"].tolist(),
                     record["largest_eigenvalues"]["values"], record["samples"])
    capsys.readouterr()
    assert got["counted"] == got["tensors"] == got["loader"] and got["tensors"][3] == 500


def test_user_data_is_described_from_its_head(lazy_user, monkeypatch, capsys):
    from torch.utils.data import Subset

    import landscape
    from landscape.batches import columns, take
    from landscape.cli import main
    from landscape.data import UserData, user_dataset
    from landscape.risk import EmpiricalRisk

    module, ckpt = lazy_user
    _reset(module, 8)  # the description reads the first 8 samples, nothing else
    data = user_dataset(f"{LAZY_MODULE}:counted", "train", lazy=True)
    assert isinstance(data, UserData) and (len(data), data.input_shape) == (module.N, (1, 8, 8))
    assert module.READS["train"] == set(range(8)) and data.num_classes is None  # no targets attribute
    module.Counted.targets = property(lambda self: self.y.tolist())  # torchvision's datasets have one
    try:
        assert user_dataset(f"{LAZY_MODULE}:counted", "train", lazy=True).num_classes == int(data.source.y.max()) + 1
    finally:
        del module.Counted.targets
    _reset(module, None)
    shuffled = user_dataset(f"{LAZY_MODULE}:loader", "train", lazy=True)  # a shuffling loader: the same head
    assert torch.equal(shuffled.head[1], data.head[1])
    again = user_dataset(f"{LAZY_MODULE}:loader", "train", lazy=True).fingerprint
    assert shuffled.fingerprint == again != user_dataset(f"{LAZY_MODULE}:loader", "test", lazy=True).fingerprint
    idx = torch.tensor([3, 7, 500])
    picked = take(shuffled.source, idx)  # the loader's batch size and collate function kept, over a Subset
    assert isinstance(picked.dataset, Subset) and picked.batch_size == 50
    x, y = columns(picked)
    assert torch.equal(x[0], data.source.x[idx]) and torch.equal(y, data.source.y[idx])

    # a command that holds its data whole reads it when it fits and refuses it in one line when not
    assert torch.equal(user_dataset(f"{LAZY_MODULE}:counted").inputs, data.source.x)
    monkeypatch.setattr("landscape.batches.CPU_BUDGET", 1000)
    with pytest.raises(LandscapeError, match="GiB as tensors.*--data-on stream.*--dataset"):
        user_dataset(f"{LAZY_MODULE}:counted")
    rc = main(["train", "--model", "convnet", "--dataset", f"{LAZY_MODULE}:counted", "--steps", "1",
               "--out", str(ckpt.parent / "t"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and "--dataset" in err
    # and --data-on auto streams what would not fit
    risk = EmpiricalRisk(landscape.load_checkpoint(ckpt).model, data.source, data_on="auto")
    assert risk.data_on == "stream"
