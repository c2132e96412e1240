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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import LandscapeError
from .filewrite import atomic_path
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
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
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


def _read_safetensors(path: Path, map_location: Any) -> tuple[dict, dict]:
    """(payload, header) of a safetensors file; a damaged or foreign file is one line."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] != b"{" and (head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"):  # a zip, or a bare pickle
        raise LandscapeError(f"{path} is a torch.save (pickle) file named .safetensors; rename it to .pt "
                             "(it is then loaded without running code) or re-save it with safetensors")
    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get("landscape", "{}")
        state = load_file(str(path), device=str(map_location or "cpu"))
    except Exception as e:  # SafetensorError (bad header length, JSON, offsets, dtype) has no importable base
        if isinstance(e, (FileNotFoundError, KeyboardInterrupt)):
            raise
        raise LandscapeError(f"cannot read {path} as safetensors: {_first_line(e)}; the file is damaged or "
                             "not a safetensors file") from None
    try:
        header = json.loads(text)
    except json.JSONDecodeError as e:
        raise LandscapeError(f"{path}: the 'landscape' entry of its safetensors metadata is not JSON ({e.msg}); "
                             "re-save it with landscape.checkpoint.save_safetensors") from None
    return {"state_dict": state}, header


def _first_line(e: BaseException) -> str:
    """The first sentence of an exception's message (torch's come with paragraphs of advice)."""
    text = str(e).strip()
    return (text.splitlines()[0].split(". ")[0] if text else type(e).__name__)[:200]


def _read(path: Path, map_location: Any) -> tuple[dict, dict]:
    """Return (state-dict-like payload, header) from any supported file."""
    if path.is_dir():
        raise LandscapeError(f"checkpoint {str(path)!r} is a directory; give the checkpoint file inside it")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, map_location)
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": the refusal below says it in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        cause = _unpickler_cause(str(e))
        if "global" not in str(e).lower():  # not a pickle of objects at all: some other file, or a damaged one
            raise LandscapeError(f"cannot read {path} as a checkpoint: not a torch.save file, or a damaged one "
                                 f"({cause[:160]})") from None
        raise LandscapeError(f"refusing to load {path}: it needs arbitrary Python objects unpickled, which could "
                             f"run code ({cause[:160]}); re-save it as a state_dict with torch.save") from None
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError, AttributeError) as e:
        # an empty file or /dev/null is an IndexError inside torch.load, a torn zip a RuntimeError, ...
        raise LandscapeError(f"cannot read {path} as a checkpoint: not a torch.save file, or a damaged one "
                             f"({_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise LandscapeError(f"{path} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    if obj.get("format") == FORMAT:
        return obj, {"model": obj.get("model"), "model_args": obj.get("model_args", {}), "meta": obj.get("meta", {})}
    if isinstance(obj.get("state_dict"), dict):  # tomgoldstein/loss-landscape .t7 files and the like
        meta = {k: _plain(v) for k, v in obj.items() if k != "state_dict" and not isinstance(v, dict)}
        return obj, {"meta": meta}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"state_dict": obj}, {}
    raise LandscapeError(f"{path} is a dict without a 'state_dict' and not a bare state_dict")


def _check_header(path: Path, header: Any) -> dict:
    """The header's fields have the types a checkpoint writes: a bad one is named, not met later as a crash."""
    if not isinstance(header, dict):
        raise LandscapeError(f"{path}: its header is {_short(header)}, expected an object with 'model', "
                             "'model_args' and 'meta'; re-save it with landscape.save_checkpoint")
    for key, kind, example in (("model", str, "'convnet'"), ("model_args", dict, "{'channels': [4, 8, 8]}"),
                               ("meta", dict, "{'dataset': 'digits'}")):
        value = header.get(key)
        if value is not None and not isinstance(value, kind):
            raise LandscapeError(f"{path}: '{key}' is {_short(value)}, expected a {kind.__name__} such as {example}; "
                                 "fix the file or pass --model/--model-args")
    return header


def _check_state(path: Path, state: Any) -> dict:
    if not isinstance(state, Mapping):
        raise LandscapeError(f"{path}: 'state_dict' is {_short(state)}, not a dict of tensors; the file holds no "
                             "weights")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise LandscapeError(f"{path}: state_dict entry {_short(bad)} is {_short(state[bad])}, not a tensor; the "
                             "file holds no usable weights")
    return dict(state)


def _short(value: Any, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _check_shapes(path: Path, net: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Name the first tensor whose shape differs (torch's own message is a page, one line per tensor)."""
    live = net.state_dict()
    for name, tensor in state.items():
        if name in live and tuple(tensor.shape) != tuple(live[name].shape):
            raise LandscapeError(f"{path} does not fit model {type(net).__name__}: tensor {name!r} has shape "
                                 f"{tuple(tensor.shape)} in the file, {tuple(live[name].shape)} in the model; "
                                 "check --model and --model-args")


def nonfinite_tensors(model: nn.Module) -> list[tuple[str, int, int]]:
    """(name, NaN count, inf count) of every floating tensor of the state_dict holding non-finite values."""
    found = []
    for name, t in model.state_dict().items():
        if t.is_floating_point() or t.is_complex():
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                n_nan = int(torch.isnan(t).sum())
                found.append((name, n_nan, int((~finite).sum()) - n_nan))
    return found


def require_finite(ckpt: "Checkpoint") -> "Checkpoint":
    """Refuse a checkpoint holding NaN or infinite weights before anything is measured on it."""
    bad = nonfinite_tensors(ckpt.model)
    if bad:
        name, n_nan, n_inf = bad[0]
        what = " and ".join(f"{n} {w}" for n, w in ((n_nan, "NaN"), (n_inf, "infinite")) if n)
        more = f" (and {len(bad) - 1} more tensor(s))" if len(bad) > 1 else ""
        raise LandscapeError(f"{ckpt.path or 'the checkpoint'} holds non-finite weights: tensor {name!r} has {what} "
                             f"value(s){more}; the run that saved it diverged, so there is nothing to measure: use "
                             "an earlier snapshot or retrain with a smaller learning rate")
    return ckpt


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
    header = _check_header(path, header)
    state = _strip_prefix(_check_state(path, payload.get("state_dict")))
    if model_args is not None and not isinstance(model_args, Mapping):
        raise LandscapeError(f"model_args must be a dict such as {{'channels': [4, 8, 8]}}, got {_short(model_args)}")
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
    _check_shapes(path, net, state)
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
