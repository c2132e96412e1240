"""Words on the figures: quantity names, axis labels, titles and landmarks from a surface's attrs.

A figure should say what it shows without its file name: which checkpoint, model and dataset,
which directions (random filter-normalized, the line between two checkpoints, a plane through
three), and the training hyperparameters the checkpoint recorded. All of it comes from the
attributes `landscape.compute_surface` writes; missing keys are simply left out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Mapping

QUANTITIES = {
    "train_loss": "train loss", "test_loss": "test loss",
    "train_acc": "train accuracy (%)", "test_acc": "test accuracy (%)",
    "train_err": "train error (%)", "test_err": "test error (%)",
    "min_eig": "smallest Hessian eigenvalue", "max_eig": "largest Hessian eigenvalue",
    "convexity": r"$|\lambda_{min} / \lambda_{max}|$",
}


def quantity_label(name: str) -> str:
    """Human label for a surface array name (``train_loss`` -> ``train loss``)."""
    return QUANTITIES.get(name, name.replace("_", " "))


def is_loss(name: str) -> bool:
    return name.endswith("loss")


def is_accuracy(name: str) -> bool:
    return name.endswith("_acc")


@dataclass
class SurfaceText:
    """What to write on a surface's figures."""

    title: str = ""
    xlabel: str = r"$\alpha$"
    ylabel: str = r"$\beta$"
    landmarks: list[tuple[tuple[float, float], str]] = field(default_factory=list)  # ((x, y), label)

    hessian: str = ""  # what the stored Hessian eigenvalues were computed on, e.g. "Hessian on 2,000 train samples"

    def hessian_titled(self, what: str) -> str:
        """``what — title``, with what the Hessian was computed on closing the last line (or on its own)."""
        lines = (f"{what} — {self.title}" if self.title else what).split("\n")
        if self.hessian:
            if len(lines[-1]) + len(self.hessian) <= 78:
                lines[-1] += f"; {self.hessian}"
            else:
                lines.append(self.hessian)
        return "\n".join(lines)

    def titled(self, quantity: str) -> str:
        """The title with the quantity drawn in front, e.g. ``train loss: resnet20 on cifar10``."""
        return f"{quantity_label(quantity)} — {self.title}" if self.title else quantity_label(quantity)


def short_path(path: Any) -> str:
    """``runs/bs128/model.pt`` -> ``bs128/model.pt``: enough to tell checkpoints apart."""
    parts = PurePath(str(path)).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)


_GENERIC_STEMS = {"model", "checkpoint", "ckpt", "final", "last", "best", "weights", "state_dict"}


def short_name(path: Any) -> str:
    """``runs/bs128/model.pt`` -> ``bs128``, ``runs/sgd_bs4096.pt`` -> ``sgd_bs4096``: a label for a marker."""
    p = PurePath(str(path))
    return p.parent.name if p.stem in _GENERIC_STEMS and p.parent.name else p.stem


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _present(attrs: Mapping[str, Any], key: str) -> Any:
    value = attrs.get(key)
    return None if value in (None, "", "none") else value


_TRAJECTORY_KEYS = ("trajectory_x", "trajectory_y", "explained_variance")


def describe_surface(attrs: Mapping[str, Any]) -> SurfaceText:
    """Title, axis labels and landmarks (checkpoints on the grid) from a surface file's attributes."""
    attrs = dict(attrs or {})
    for key in _TRAJECTORY_KEYS:  # `landscape plot --dir-file` stores the direction file's attrs as dir_*
        if key not in attrs and f"dir_{key}" in attrs:
            attrs[key] = attrs[f"dir_{key}"]
    text = SurfaceText()
    first = []
    model, dataset, ckpt = _present(attrs, "model"), _present(attrs, "dataset"), _present(attrs, "checkpoint")
    if model and dataset and dataset != "custom":
        first.append(f"{model} on {dataset}")
    elif model or (dataset and dataset != "custom"):
        first.append(str(model or dataset))
    hyper = []
    bs, wd = _number(attrs.get("meta_batch_size")), _number(attrs.get("meta_weight_decay"))
    if bs is not None:
        hyper.append(f"batch {int(bs)}")
    if wd is not None:
        hyper.append(f"wd {wd:g}")
    test_acc = _number(attrs.get("meta_test_acc"))
    if test_acc is not None:
        hyper.append(f"test err {100 * (1 - test_acc) if test_acc <= 1 else 100 - test_acc:.1f}%")
    mode = attrs.get("mode", "random" if ckpt else None)
    ckpt2, ckpt3 = _present(attrs, "ckpt2"), _present(attrs, "ckpt3")
    if mode in ("line", "plane") or ckpt2:
        hyper = []  # the hyperparameters recorded are the first checkpoint's only
    if mode == "line" or (ckpt2 and not ckpt3 and mode is None):
        a, b = short_name(ckpt) if ckpt else "A", short_name(ckpt2) if ckpt2 else "B"
        second = f"interpolation {a} → {b}"
        text.xlabel = rf"$\alpha$  (0: {a}, 1: {b})"
        text.ylabel = r"$\beta$  (random direction)"
        text.landmarks = [((0.0, 0.0), a), ((1.0, 0.0), b)]
    elif mode == "plane" or ckpt3:
        a, b, c = (short_name(p) if p else n for p, n in ((ckpt, "A"), (ckpt2, "B"), (ckpt3, "C")))
        second = f"plane through {a}, {b}, {c}"
        text.xlabel, text.ylabel = rf"$\alpha$  (towards {b})", rf"$\beta$  (towards {c})"
        text.landmarks = [((0.0, 0.0), a), ((1.0, 0.0), b), ((0.0, 1.0), c)]
    elif mode == "custom":
        second = f"directions from {short_path(attrs.get('direction_file', 'a file'))}"
        if ckpt:
            second = f"{short_path(ckpt)}, {second}"
        text.landmarks = [((0.0, 0.0), short_name(ckpt) if ckpt else "checkpoint")]
    else:
        norm = _present(attrs, "norm")
        kind = "random directions" if norm is None else f"{norm}-normalized random directions"
        second = f"{short_path(ckpt)}, {kind}" if ckpt else (kind if norm else "")
        text.landmarks = [((0.0, 0.0), short_name(ckpt) if ckpt else "checkpoint")]
        if norm:
            text.xlabel, text.ylabel = r"$\alpha$  (direction 1)", r"$\beta$  (direction 2)"
    if _present(attrs, "trajectory_x") is not None:
        variance = explained_variance_from(attrs)
        text.xlabel, text.ylabel = pc_labels(variance)
        second = f"PCA of the training trajectory{', ' + short_path(ckpt) if ckpt else ''}"
        text.landmarks = [((0.0, 0.0), "final")]
    eig_n = _number(attrs.get("eig_samples"))
    if eig_n is not None:
        text.hessian = f"Hessian on {int(eig_n):,} {attrs.get('eig_split', 'train')} samples"
    line1 = ", ".join(first + hyper)
    text.title = "\n".join(t for t in (line1, second) if t)
    return text


def pc_labels(explained_variance: Any = None) -> tuple[str, str]:
    """Axis labels for the first two principal components, with their share of variance if known."""
    labels = []
    for k, name in enumerate(("1st PC", "2nd PC")):
        v = None
        if explained_variance is not None and len(explained_variance) > k:
            v = _number(explained_variance[k])
        if v is None:
            labels.append(name)
        else:
            labels.append(f"{name}: {100 * v if v <= 1 else v:.1f}% of variance")
    return labels[0], labels[1]


def explained_variance_from(attrs: Mapping[str, Any]) -> list[float] | None:
    value = attrs.get("explained_variance")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return [float(v) for v in list(value)]
