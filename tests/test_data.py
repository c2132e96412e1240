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
