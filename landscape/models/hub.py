"""Models from the two hubs researchers use, as optional extras: ``hf:<directory>`` and ``timm:<name>``.

Nothing is downloaded. ``hf:`` reads a directory written by ``save_pretrained`` (config and
weights) with ``local_files_only``; ``timm:`` builds the architecture with random weights and the
checkpoint (``--ckpt``) supplies the trained ones. Both are wrapped so the model maps inputs to a
logits tensor, which is what every loss and measurement here expects.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LandscapeError

EXTRAS = {"hf": ("transformers", "hf"), "timm": ("timm", "timm")}


def _import(kind: str):
    module, extra = EXTRAS[kind]
    try:
        return importlib.import_module(module)
    except Exception as e:  # absent, or present but broken (timm with a torchvision built for another torch)
        why = "is not installed" if isinstance(e, ModuleNotFoundError) else \
            f"failed to import ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
        raise LandscapeError(f"--model {kind}:... needs {module}, which {why}: install the {extra} extra, "
                             f"pip install 'landscape[{extra}]'") from None


class HubLogits(nn.Module):
    """A hub model whose forward returns logits: ``.logits`` of a Hugging Face output, dict batches as kwargs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Any) -> torch.Tensor:
        if isinstance(x, dict):
            out = self.net(**x)
        elif isinstance(x, torch.Tensor) and not x.is_floating_point():
            out = self.net(input_ids=x)
        elif getattr(self.net, "main_input_name", None) == "pixel_values":
            out = self.net(pixel_values=x)
        else:
            out = self.net(x)
        return out.logits if hasattr(out, "logits") else out

    @staticmethod
    def adapt_state_dict(state: dict) -> dict:
        """Weights saved from the hub model itself (a timm or transformers state dict) lack the ``net.`` prefix."""
        if state and not any(k.startswith("net.") for k in state):
            return {f"net.{k}": v for k, v in state.items()}
        return state


def build_hf(directory: str, **kwargs: Any) -> nn.Module:
    transformers = _import("hf")
    path = Path(directory).expanduser()
    if not (path / "config.json").is_file():
        raise LandscapeError(f"--model hf:{directory}: {str(path)!r} is not a directory written by save_pretrained "
                             "(no config.json there); nothing is downloaded, so give a local directory")
    config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    archs = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, archs[0], None) if archs else None
    if cls is None:
        cls = transformers.AutoModel
    try:
        net = cls.from_pretrained(str(path), local_files_only=True, attn_implementation="eager", **kwargs)
    except (OSError, ValueError, TypeError) as e:
        raise LandscapeError(f"--model hf:{directory}: transformers could not load it: "
                             f"{str(e).splitlines()[0][:200]}") from None
    return HubLogits(net)


def build_timm(name: str, **kwargs: Any) -> nn.Module:
    timm = _import("timm")
    try:
        net = timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as e:
        raise LandscapeError(f"--model timm:{name}: {str(e).splitlines()[0][:200]}") from None
    return HubLogits(net)


def build_hub_model(name: str, **kwargs: Any) -> nn.Module:
    kind, _, rest = name.partition(":")
    if not rest:
        raise LandscapeError(f"--model {name!r}: say which model, e.g. hf:./my_model_dir or timm:resnet18")
    return build_hf(rest, **kwargs) if kind == "hf" else build_timm(rest, **kwargs)
