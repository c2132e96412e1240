"""Checkpoints that load without running code.

The native file is a ``torch.save`` dict (GUIDE.md section 4) read with ``weights_only=True``.
Also read: bare state_dicts (the model named by the caller), the ``{'state_dict': ...}`` files
of the older loss-landscape code, ``module.``-prefixed keys (DataParallel) and safetensors.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import LandscapeError
from .models import build_model, list_models

FORMAT = "landscape-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A model in eval mode with its training metadata."""

    model: nn.Module
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "model"

    def dataset_name(self, requested: str | None = None) -> str:
        """``requested`` if given, else the dataset the checkpoint records; a one-line error if neither."""
        name = requested or self.meta.get("dataset")
        if not name:
            raise LandscapeError(f"{self.path or 'the checkpoint'} does not record its dataset: pass --dataset NAME")
        return name


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """Metadata restricted to what ``weights_only`` loading accepts: numbers, strings, lists, dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        return value.item()
    if value is None:
        return None
    for plain in (bool, int, float, str):  # exact builtins: subclasses (torch.__version__) do not unpickle safely
        if isinstance(value, plain):
            return plain(value)
    return str(value)


def model_spec(model: nn.Module) -> dict | None:
    """The name (registry, import path or hub) and arguments a model was built from; None if unknown."""
    return getattr(model, "landscape_spec", None)


def reload_note(path: str | os.PathLike, model: nn.Module) -> str:
    """How to reload a checkpoint of a model that ``build_model`` did not make (saved without a spec)."""
    from .imports import model_class_path

    cls = model_class_path(model)
    flag = f"--model {cls} --model-args '{{...}}'" if cls else "--model pkg.module:factory"
    python = f"load_checkpoint({str(path)!r}, model={type(model).__name__}(...))"
    return (f"{path} holds the weights only ({type(model).__name__} was not built by landscape.build_model, so its "
            f"constructor arguments are unknown): reload with {python}, or on the command line with {flag}; "
            "build it with build_model('pkg.module:factory', ...) to have them recorded")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: Mapping | None = None) -> Path:
    """Write atomically (a killed run never leaves half a checkpoint).

    A model from ``build_model`` is saved with its name (or import path) and arguments, so loading
    rebuilds it; any other module is saved with its weights and meta only (see `reload_note`).
    """
    spec = model_spec(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    if spec is None:
        meta.setdefault("reload", reload_note(path, model))
    obj = {"format": FORMAT, "version": VERSION, "model": spec["name"] if spec else None,
           "model_args": _plain(spec["args"]) if spec else {},
           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
           "meta": _plain(meta)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def _unpickler_cause(message: str) -> str:
    """The one informative line of torch's weights-only refusal (it comes wrapped in a page of advice)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line]  # "unsupported GLOBAL posix.system ...", "Unsupported global: ..."
    if named:
        return named[0].split("WeightsUnpickler error:")[-1].strip().split(". ")[0]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return (rest or (lines[i + 1] if i + 1 < len(lines) else line)).split(". ")[0]
    return lines[0] if lines else "unpickling failed"


def _read(path: Path, map_location: Any) -> tuple[dict, dict]:
    """Return (state-dict-like payload, header) from any supported file."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("landscape", "{}"))
        return {"state_dict": load_file(str(path), device=str(map_location or "cpu"))}, header
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        cause = _unpickler_cause(str(e))
        if "global" not in str(e).lower():  # not a pickle of objects at all: some other file, or a damaged one
            raise LandscapeError(f"cannot read {path} as a checkpoint: not a torch.save file, or a damaged one "
                                 f"({cause[:160]})") from None
        raise LandscapeError(f"refusing to load {path}: it needs arbitrary Python objects unpickled, which could "
                             f"run code ({cause[:160]}); re-save it as a state_dict with torch.save") from None
    except (RuntimeError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise LandscapeError(f"cannot read {path} as a checkpoint: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(obj, dict):
        raise LandscapeError(f"{path} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    if obj.get("format") == FORMAT:
        return obj, {"model": obj.get("model"), "model_args": obj.get("model_args", {}), "meta": obj.get("meta", {})}
    if isinstance(obj.get("state_dict"), dict):  # tomgoldstein/loss-landscape .t7 files and the like
        meta = {k: _plain(v) for k, v in obj.items() if k != "state_dict" and not isinstance(v, dict)}
        return obj, {"meta": meta}
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"state_dict": obj}, {}
    raise LandscapeError(f"{path} is a dict without a 'state_dict' and not a bare state_dict")


def _strip_prefix(state: dict) -> dict:
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_checkpoint(path: str | os.PathLike, model: nn.Module | str | None = None,
                    map_location: Any = "cpu", model_args: Mapping | None = None) -> Checkpoint:
    """Load any supported checkpoint into a model in eval mode.

    ``model`` may be a module to load into, a registry name (needed for bare state_dicts), or
    None when the file names its own model.
    """
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"checkpoint {str(path)!r} does not exist")
    payload, header = _read(path, map_location)
    state = _strip_prefix(dict(payload["state_dict"]))
    if isinstance(model, nn.Module):
        net = model
    else:
        name = model or header.get("model")
        if name is None:
            hint = (header.get("meta") or {}).get("reload")
            raise LandscapeError(hint or f"{path} does not name its model: pass --model NAME "
                                 f"(one of {', '.join(list_models())}, or an import path pkg.module:factory) "
                                 "and --model-args if needed")
        args = dict(header.get("model_args") or {})
        args.update(model_args or {})
        net = build_model(name, **args)
    if hasattr(net, "adapt_state_dict"):  # hub models (landscape.models.hub) take the hub's own weights files
        state = net.adapt_state_dict(state)
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        detail = []
        if result.missing_keys:
            detail.append(f"missing {result.missing_keys[:3]}{'...' if len(result.missing_keys) > 3 else ''}")
        if result.unexpected_keys:
            detail.append(f"unexpected {result.unexpected_keys[:3]}{'...' if len(result.unexpected_keys) > 3 else ''}")
        raise LandscapeError(f"{path} does not fit model {type(net).__name__}: {'; '.join(detail)}; "
                             "check --model and --model-args")
    net.to(map_location if map_location is not None else "cpu").eval()
    meta = dict(header.get("meta") or {})
    meta.setdefault("model", getattr(net, "landscape_spec", {}).get("name", type(net).__name__))
    return Checkpoint(model=net, meta=meta, path=path, sha256=file_sha256(path))


def save_safetensors(path: str | os.PathLike, model: nn.Module, meta: Mapping | None = None) -> Path:
    """Write a safetensors file that carries the model spec and meta in its header."""
    from safetensors.torch import save_file

    spec = model_spec(model)
    if spec is None:
        raise LandscapeError("save_safetensors needs a model made by landscape.build_model (its name goes in the "
                             "header); save others with save_checkpoint")
    header = {"model": spec["name"], "model_args": _plain(spec["args"]), "meta": _plain(dict(meta or {}))}
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"landscape": json.dumps(header)})
    return Path(path)
