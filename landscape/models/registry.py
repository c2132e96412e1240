"""A registry of model constructors, in the spirit of timm: `build_model(name, **kwargs)`.

Each built model remembers its registry name and arguments (``model.landscape_spec``) so a
checkpoint can rebuild it without pickling code.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..errors import LandscapeError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None):
    """Decorator: add a constructor to the registry under its function name (or ``name``)."""
    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name or f.__name__] = f
        return f
    return wrap(fn) if fn is not None else wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names and arguments are one clear error."""
    try:
        ctor = _REGISTRY[name]
    except (KeyError, TypeError):
        raise LandscapeError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    params = inspect.signature(ctor).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        bad = sorted(set(kwargs) - set(params))
        if bad:
            raise LandscapeError(f"model {name!r} takes no argument(s) {bad}; it takes {sorted(params)}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = ctor(**kwargs)
    except LandscapeError:
        raise
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError, ZeroDivisionError) as e:
        # a negative width is torch's "negative dimension", a string where a list belongs a TypeError, ...
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise LandscapeError(f"model {name!r} cannot be built with arguments {kwargs}: {detail}; "
                             "check --model-args") from None
    empty = next((n for n, p in model.named_parameters() if p.numel() == 0), None)
    if empty is not None:  # a width of 0 builds (torch only warns) but computes nothing
        raise LandscapeError(f"model {name!r} built with arguments {kwargs} has an empty parameter {empty!r}; "
                             "every width must be at least 1: check --model-args")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    model.landscape_spec = {"name": name, "args": dict(kwargs)}
    return model


class ShapeCheckedModel(nn.Module):
    """Base class: refuse inputs whose per-sample shape differs from the one built for."""

    def __init__(self, input_shape: tuple, strict_spatial: bool = True):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.strict_spatial = strict_spatial

    def check_input(self, x: torch.Tensor) -> None:
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():  # shapes are symbolic then (landscape.fusion traces models)
            return
        got = tuple(x.shape[1:])
        want = self.input_shape
        ok = got == want if self.strict_spatial else (len(got) == len(want) and got[0] == want[0])
        if not ok:
            raise LandscapeError(f"{type(self).__name__} was built for inputs of shape {want} per sample "
                                 f"but got {got}; build it with input_shape={got} or use matching data")
