"""Where to look: random filter-normalized directions, and lines and planes through checkpoints.

Directions are plain ``dict[str, Tensor]`` keyed by parameter/buffer name, drawn on the CPU
from a generator seeded by ``(seed, index)``, so every device and every MPI rank gets the same
numbers. Filter normalization (Li et al. 2018) rescales each filter (a slice along the output
dimension) of a Gaussian direction to the norm of the matching filter of the weights, which
removes the scale invariance that makes unnormalized plots misleading.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import LandscapeError
from .filewrite import save_h5_atomic
from .params import Direction, dot, weight_tensors

NORMS = ("filter", "layer", "weight", "dfilter", "dlayer", "none")
IGNORES = ("biasbn", "none")
BIAS_DIRS = ("random", "weights")
_EPS = 1e-10


def _check(name: str, value: str | None, allowed: Sequence[str]) -> str:
    value = "none" if value is None else value
    if value not in allowed:
        raise LandscapeError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
    return value


def _filter_norms(t: torch.Tensor) -> torch.Tensor:
    """Norm of each filter (row along dim 0), shaped to broadcast back over the tensor."""
    return t.reshape(t.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (t.dim() - 1))


def _check_bias_dir(ignore: str, bias_dir: str) -> str:
    bias_dir = _check("bias_dir", bias_dir, BIAS_DIRS)
    if bias_dir != "random" and ignore != "none":
        raise LandscapeError(f"bias_dir={bias_dir!r} applies only with ignore='none' (--ignore none); with "
                             f"ignore={ignore!r} biases and BN parameters do not move")
    return bias_dir


def normalize_direction(d: torch.Tensor, w: torch.Tensor, norm: str = "filter", ignore: str = "biasbn",
                        bias_dir: str = "random") -> torch.Tensor:
    """Return ``d`` rescaled against weights ``w`` (a new tensor).

    1-D tensors (biases, BN parameters and statistics) get a zero direction under
    ``ignore="biasbn"``. Under ``ignore="none"`` they move along ``d`` treated as a single filter
    (``bias_dir="random"``, the default), or along the weights themselves (``bias_dir="weights"``,
    what tomgoldstein/loss-landscape does, whatever the norm).
    """
    norm, ignore = _check("norm", norm, NORMS), _check("ignore", ignore, IGNORES)
    bias_dir = _check_bias_dir(ignore, bias_dir)
    if d.dim() <= 1:
        if ignore == "biasbn":
            return torch.zeros_like(d)
        if bias_dir == "weights":
            return w.detach().clone().to(d.dtype)
        d, w = d.reshape(1, -1), w.reshape(1, -1)
        return normalize_direction(d, w, norm, "none").reshape(-1)
    if norm == "filter":
        return d * (_filter_norms(w) / (_filter_norms(d) + _EPS))
    if norm == "layer":
        return d * (w.norm() / (d.norm() + _EPS))
    if norm == "weight":
        return d * w
    if norm == "dfilter":
        return d / (_filter_norms(d) + _EPS)
    if norm == "dlayer":
        return d / (d.norm() + _EPS)
    return d.clone()


def _generator(seed: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def random_directions(model: nn.Module, n: int = 2, norm: str = "filter", ignore: str = "biasbn",
                      kind: str = "weights", seed: int = 0, orthogonalize: bool = False,
                      bias_dir: str = "random") -> list[Direction]:
    """``n`` Gaussian directions in the space of ``kind`` tensors, normalized against the model.

    ``orthogonalize`` makes each direction orthogonal to the previous ones (Gram-Schmidt on the
    flattened vectors, after normalization), so the 2D plane has no shear. ``bias_dir`` (with
    ``ignore="none"``) picks how 1-D tensors move: ``"random"`` (default) a Gaussian vector scaled
    to their norm, ``"weights"`` the tensors themselves, as the older loss-landscape code does.
    """
    _check("norm", norm, NORMS), _check("ignore", ignore, IGNORES), _check_bias_dir(ignore, bias_dir)
    weights = {name: t.detach().to("cpu", torch.float32) for name, t in weight_tensors(model, kind).items()}
    directions: list[Direction] = []
    for k in range(n):
        g = _generator(seed, k)
        d = {name: normalize_direction(torch.randn(w.shape, generator=g, dtype=torch.float32), w, norm, ignore,
                                       bias_dir)
             for name, w in weights.items()}
        if orthogonalize:
            for prev in directions:
                coef = dot(d, prev) / max(dot(prev, prev), _EPS)
                d = {name: d[name] - coef * prev[name] for name in d}
        directions.append(d)
    return directions


def _difference(a: nn.Module, b: nn.Module, kind: str) -> Direction:
    wa, wb = weight_tensors(a, kind), weight_tensors(b, kind)
    if list(wa) != list(wb):
        diff = sorted(set(wa) ^ set(wb))
        raise LandscapeError(f"the two models have different tensors ({diff[:3]}...); they must share an architecture")
    out = {}
    for name in wa:
        if wa[name].shape != wb[name].shape:
            raise LandscapeError(f"tensor {name!r} differs in shape between the models: "
                                 f"{tuple(wa[name].shape)} vs {tuple(wb[name].shape)}")
        out[name] = (wb[name].detach().to("cpu", torch.float32) - wa[name].detach().to("cpu", torch.float32))
    return out


def interpolation_direction(model_a: nn.Module, model_b: nn.Module, kind: str = "states") -> Direction:
    """``b - a``: moving ``a`` by 1 along it lands exactly on ``b`` (BN statistics too with kind='states')."""
    return _difference(model_a, model_b, kind)


def orthogonal_to(d: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> Direction:
    """``d`` minus its projection on ``ref`` over the tensors both name, BatchNorm statistics left out.

    The statistics keep ``d``'s own entries (zero for a ``biasbn`` random direction), so the
    orthogonal direction moves no running statistic the random one did not.
    """
    from .bnstats import is_stat_name

    shared = [n for n in d if n in ref and not is_stat_name(n)]
    num = dot({n: d[n] for n in shared}, {n: ref[n] for n in shared})
    den = dot({n: ref[n] for n in shared}, {n: ref[n] for n in shared})
    coef = num / den if den > _EPS else 0.0
    return {n: (t - coef * ref[n].to(t.dtype) if n in shared else t.clone()) for n, t in d.items()}


def plane_directions(model_a: nn.Module, model_b: nn.Module, model_c: nn.Module, kind: str = "states") -> list[Direction]:
    """The plane through three models, origin at ``a``: (1, 0) is ``b`` and (0, 1) is ``c``."""
    return [_difference(model_a, model_b, kind), _difference(model_a, model_c, kind)]


_GROUPS = ("xdirection", "ydirection")


def save_directions(path: str | os.PathLike, directions: Sequence[Mapping[str, torch.Tensor]],
                    attrs: Mapping | None = None) -> Path:
    """Direction h5: one group per direction, one dataset per tensor named by the tensor's name."""
    if not 1 <= len(directions) <= 2:
        raise LandscapeError(f"a direction file holds 1 or 2 directions, got {len(directions)}")
    def fill(f) -> None:
        for group, d in zip(_GROUPS, directions):
            g = f.create_group(group)
            for name, t in d.items():
                g.create_dataset(name, data=t.detach().cpu().numpy())
        for key, value in (attrs or {}).items():
            f.attrs[key] = "none" if value is None else value

    return save_h5_atomic(path, fill)  # whole or not at all; a full disk is one line


def _positional(direction: Mapping[str, torch.Tensor]) -> bool:
    return bool(direction) and all(name.isdigit() for name in direction)


def _by_position(path: Path, directions: list[Direction], model: nn.Module,
                 kind: str | None) -> tuple[list[Direction], str]:
    """Name the tensors of a loss-landscape direction file ('0', '1', ... in its order).

    Its ``dir_type=weights`` files follow ``model.parameters()``, its ``states`` files every
    ``state_dict()`` entry; integer entries (BN's ``num_batches_tracked``) are dropped, as no
    evaluation reads them. The kind is the one whose count matches unless ``kind`` says.
    """
    n = len(directions[0])
    for k, d in enumerate(directions):
        if sorted(d, key=int) != [str(i) for i in range(n)]:
            raise LandscapeError(f"{path}: {_GROUPS[k]} holds datasets {sorted(d, key=int)[:4]}...; a loss-landscape "
                                 f"direction file numbers them 0..{n - 1}, the same in every group")
    orders = {"weights": [(name, p.detach()) for name, p in model.named_parameters()],
              "states": list(model.state_dict().items())}
    candidates = [kind] if kind else ["weights", "states"]
    matches = [c for c in candidates if len(orders[c]) == n]
    if not matches:
        raise LandscapeError(
            f"{path} holds {n} unnamed tensors per direction (loss-landscape's layout, one per parameter or "
            f"state_dict entry in order), but this model has {len(orders['weights'])} parameters and "
            f"{len(orders['states'])} state_dict entries"
            + (f" (--kind {kind} asks for its {kind})" if kind else "") + "; it was made for another model")
    chosen = matches[0]
    out = []
    for d in directions:
        named = {}
        for i, (name, t) in enumerate(orders[chosen]):
            if tuple(d[str(i)].shape) != tuple(t.shape):
                raise LandscapeError(f"{path}: tensor {i} has shape {tuple(d[str(i)].shape)}, but {chosen[:-1]} {i} of "
                                     f"this model ({name!r}) has {tuple(t.shape)}; it was made for another model")
            if t.is_floating_point():
                named[name] = d[str(i)].to(torch.float32)
        out.append(named)
    return out, chosen


def load_directions(path: str | os.PathLike, model: nn.Module | None = None,
                    kind: str | None = None) -> tuple[list[Direction], dict]:
    """Read a direction file; with ``model`` given, check every tensor name and shape matches.

    Files of tomgoldstein/loss-landscape, whose datasets are numbered in the order of the model's
    parameters (or of its state_dict), are mapped onto the model's names; their ``kind`` is in the
    returned attributes.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"direction file {str(path)!r} does not exist")
    if path.is_dir() or not h5py.is_hdf5(path):
        raise LandscapeError(f"direction file {str(path)!r} is not an h5 file; give one written by landscape "
                             "surface/plot (*_directions.h5) or landscape.save_directions")
    with h5py.File(path, "r") as f:
        directions = [{name: torch.from_numpy(np.asarray(f[group][name][()])) for name in f[group]}
                      for group in _GROUPS if group in f]
        attrs = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v) for k, v in f.attrs.items()}
    if not directions:
        raise LandscapeError(f"{path} has no 'xdirection' group: not a direction file")
    if model is not None and _positional(directions[0]):
        directions, attrs["kind"] = _by_position(path, directions, model, kind)
        attrs["layout"] = "positional"
    if model is not None:
        live = weight_tensors(model, kind or attrs.get("kind", "weights"))
        for d in directions:
            unknown = [n for n in d if n not in live]
            if unknown:
                raise LandscapeError(f"{path} names tensors this model lacks ({unknown[:3]}); "
                                     "it was made for another model or --kind")
            for n, t in d.items():
                if tuple(t.shape) != tuple(live[n].shape):
                    raise LandscapeError(f"{path}: tensor {n!r} has shape {tuple(t.shape)}, the model's is "
                                         f"{tuple(live[n].shape)}")
    return directions, attrs


def directions_fingerprint(directions: Sequence[Mapping[str, torch.Tensor]]) -> str:
    """A short hash of the direction values, recorded in surface files to refuse mixing."""
    import hashlib

    h = hashlib.sha256()
    for d in directions:
        for name in sorted(d):
            h.update(name.encode())
            h.update(d[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
