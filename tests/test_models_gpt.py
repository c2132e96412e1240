"""gpt-tiny and the pysrc byte-level dataset: shapes, causality, a fixed split, one line for misuse."""
import numpy as np
import pytest
import torch

import landscape
from landscape.errors import LandscapeError


def test_gpt_tiny_is_causal_and_a_few_hundred_thousand_parameters():
    model = landscape.build_model("gpt-tiny")
    assert 200_000 < sum(p.numel() for p in model.parameters()) < 500_000
    small = landscape.build_model("gpt-tiny", input_shape=(8,), num_classes=11, width=8, heads=2).eval()
    x = torch.randint(0, 11, (2, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 11  # change only the future of position 4
    with torch.no_grad():
        a, b = small(x), small(y)
    assert a.shape == (2, 8, 11) and torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])
    with pytest.raises(LandscapeError, match="longer than the context"):
        small(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(LandscapeError, match="token ids"):
        small(torch.zeros(1, 8))


def test_pysrc_is_next_byte_prediction_on_a_fixed_split(tmp_path, monkeypatch):
    from landscape.data import PYSRC_CONTEXT, PYSRC_SIZES, pysrc_files

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    train, test = landscape.get_dataset("pysrc", "train"), landscape.get_dataset("pysrc", "test")
    assert train.inputs.shape == (PYSRC_SIZES["train"], PYSRC_CONTEXT) and len(test) == PYSRC_SIZES["test"]
    assert train.num_classes == 128 and train.inputs.dtype == torch.int64
    assert torch.equal(train.inputs[:, 1:], train.targets[:, :-1])  # targets are the inputs shifted by one
    cached = list(tmp_path.glob("pysrc-*.npz"))
    assert len(cached) == 1 and train.fingerprint[:16] in cached[0].name
    stored = np.load(cached[0])
    assert list(stored["files"]) == [f.name for f in pysrc_files()]
    text = bytes(train.inputs[0].numpy().astype(np.uint8)).decode("ascii")
    assert text.isprintable() or "\n" in text
    again = landscape.get_dataset("pysrc", "train")  # from the cache: the same windows
    assert torch.equal(again.inputs, train.inputs)
    rows = {bytes(r.numpy().astype(np.uint8)) for r in train.inputs[:2000]}
    assert not rows & {bytes(r.numpy().astype(np.uint8)) for r in test.inputs}  # split by file: no shared windows
