"""What every landscape figure shares: titles from file attributes, masking, saving."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib.pyplot, with a non-interactive backend when there is no display (not in Jupyter)."""
    import os
    import sys

    import matplotlib

    if "ipykernel" not in sys.modules and not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def masked(z: np.ndarray) -> np.ma.MaskedArray:
    """NaN (not computed) and inf (diverged) points are masked, never drawn, never crash."""
    z = np.asarray(z, dtype=float)
    return np.ma.masked_invalid(z)


def title_from_attrs(attrs: dict, quantity: str = "") -> str:
    parts = []
    name = attrs.get("checkpoint")
    if name and name != "none":
        parts.append(Path(str(name)).parent.name if Path(str(name)).stem == "model" else Path(str(name)).stem)
    if attrs.get("dataset"):
        parts.append(str(attrs["dataset"]))
    bs, wd = attrs.get("meta_batch_size"), attrs.get("meta_weight_decay")
    if bs is not None:
        parts.append(f"batch {bs}")
    if wd is not None:
        parts.append(f"wd {wd:g}" if isinstance(wd, (int, float)) else f"wd {wd}")
    acc = attrs.get("meta_test_acc")
    if isinstance(acc, (int, float)):
        parts.append(f"test err {100 * (1 - acc):.1f}%")
    head = "  |  ".join(parts)
    return f"{quantity}\n{head}" if quantity and head else (quantity or head)


def axis_label(attrs: dict, axis: str) -> str:
    mode = attrs.get("mode", "random")
    if mode == "line" and axis == "x":
        return "interpolation coefficient (0: first checkpoint, 1: second)"
    if mode == "plane":
        return f"{axis} (plane through three checkpoints)"
    norm = attrs.get("norm", "filter")
    label = attrs.get(f"{axis}_label")
    return str(label) if label else f"{axis} ({norm}-normalized direction)"


def save(fig, stem: Path, formats: Sequence[str]) -> list[Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    pyplot().close(fig)
    return paths
