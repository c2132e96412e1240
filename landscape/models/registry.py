"""A registry of model constructors, in the spirit of timm: `build_model(name, **kwargs)`.

``name`` is a registered name, an import path ``pkg.module:factory`` (any callable returning an
``nn.Module``: a class or a function), ``hf:<directory>`` (a Hugging Face model saved with
``save_pretrained``) or ``timm:<architecture>``. Each built model remembers that name and its
arguments (``model.landscape_spec``) so a checkpoint can rebuild it without pickling code.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..errors import LandscapeError
from ..registries import register
from ..imports import accepted_kwargs, call_factory, check_kwargs, is_import_path, resolve

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module] | str | None = None, *, name: str | None = None):
    """Decorator: add a constructor to the registry under its function name, or a name you give.

    All of ``@register_model``, ``@register_model("name")`` and ``@register_model(name="name")`` work.
    A name taken by another constructor is refused (`landscape.registries`); the same definition
    again (a re-run notebook cell) replaces it.
    """
    if isinstance(fn, str):  # @register_model("name")
        fn, name = None, fn
    if name is not None and (not name or ":" in name):
        raise LandscapeError(f"model name {name!r} must be non-empty and without ':' (that marks import paths)")

    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(f):
            raise LandscapeError(f"register_model decorates a class or function, not a {type(f).__name__}")
        register(_REGISTRY, name or f.__name__, f, "model")
        return f
    return wrap(fn) if fn is not None else wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _construct(ctor: Callable[..., nn.Module], name: str, kwargs: dict) -> nn.Module:
    """A registered model from ``kwargs`` a user typed: values it cannot be built with are one line."""
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
    return model


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by registry name, import path or hub name; bad names and arguments are one clear error."""
    if name.startswith(("hf:", "timm:")):
        from . import hub

        model = hub.build_hub_model(name, **kwargs)
    elif is_import_path(name):
        ctor = resolve(name, "model")
        check_kwargs(ctor, kwargs, f"model {name!r}") if callable(ctor) else None
        model = call_factory(ctor, name, "model", kwargs)
        if not isinstance(model, nn.Module):
            raise LandscapeError(f"model {name!r} returned a {type(model).__name__}, not a torch.nn.Module")
    else:
        try:
            ctor = _REGISTRY[name]
        except KeyError:
            raise LandscapeError(f"unknown model {name!r}; available: {', '.join(list_models())}, or an import "
                                 "path such as mymodels:TinyMixer (module:factory)") from None
        check_kwargs(ctor, kwargs, f"model {name!r}")
        model = _construct(ctor, name, kwargs)
    model.landscape_spec = {"name": name, "args": dict(kwargs)}
    return model


def dataset_kwargs(name: str, input_shape: tuple, num_classes: int | None) -> dict:
    """The dataset-derived constructor arguments to pass: all for built-ins, those accepted by a factory."""
    args = {"input_shape": tuple(input_shape), "num_classes": num_classes}
    if name.startswith(("hf:", "timm:")):
        return {}
    if is_import_path(name):
        ctor = resolve(name, "model")
        return accepted_kwargs(ctor, args) if callable(ctor) else {}
    return args


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
