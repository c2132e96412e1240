"""Names that are import paths: ``pkg.module:attr`` for a user's model factory, data or loss.

Everywhere the toolkit takes a model, dataset or loss *name* it also takes ``module:attribute``,
so the command line works on code it has never seen (``--model mymodels:TinyMixer``). A
checkpoint records that path and the arguments, and loading imports the module the user named:
code the user chose to run, never code stored inside a file. The current directory is importable
(as with ``python -m``), because the ``landscape`` script's own directory is what Python puts
on ``sys.path`` otherwise.

Every failure (no such module, no such attribute, a factory that raises, a wrong return type)
is one `LandscapeError` line that names the path and says what to fix.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any, Callable, Mapping

from .errors import LandscapeError

_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_import_path(name: Any) -> bool:
    """True for ``pkg.module:attr`` (and ``module:Class.method``); registry names have no colon."""
    return isinstance(name, str) and ":" in name and not name.startswith(("hf:", "timm:"))


def resolve(path: str, what: str = "object") -> Any:
    """The attribute ``attr`` of module ``pkg.module`` named by ``pkg.module:attr``."""
    if not _PATH.match(path):
        raise LandscapeError(f"{what} {path!r} is not an import path: write it as package.module:attribute "
                             "(for example mymodels:TinyMixer)")
    module_name, attr = path.split(":", 1)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise LandscapeError(f"{what} {path!r}: no module named {e.name!r} (run from the directory that "
                                 "holds it, or add that directory to PYTHONPATH)") from None
        raise LandscapeError(f"{what} {path!r}: importing {module_name!r} failed: it needs module {e.name!r}, "
                             "which is not installed") from None
    except Exception as e:  # the user's module raised at import time
        raise LandscapeError(f"{what} {path!r}: importing {module_name!r} raised "
                             f"{type(e).__name__}: {_first_line(e)}") from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))[:8]
            raise LandscapeError(f"{what} {path!r}: module {module_name!r} has no attribute {attr!r}"
                                 + (f" (it has {', '.join(public)})" if public else ""))
        value = getattr(value, part)
    return value


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "(no message)"


def call_factory(fn: Callable, path: str, what: str, kwargs: Mapping[str, Any] | None = None) -> Any:
    """Call a user factory; anything it raises becomes one line naming the path."""
    if not callable(fn):
        raise LandscapeError(f"{what} {path!r} is a {type(fn).__name__}, not something to call")
    try:
        return fn(**dict(kwargs or {}))
    except LandscapeError:
        raise
    except Exception as e:
        raise LandscapeError(f"{what} {path!r} raised {type(e).__name__}: {_first_line(e)}") from None


def accepted_kwargs(fn: Callable, kwargs: Mapping[str, Any]) -> dict:
    """The subset of ``kwargs`` that ``fn``'s signature takes (all of them with ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass nothing optional
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def check_kwargs(fn: Callable, kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse arguments the callable does not take, naming the ones it does."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    bad = sorted(set(kwargs) - set(params))
    if bad:
        raise LandscapeError(f"{what} takes no argument(s) {bad}; it takes {sorted(params)}")


def model_class_path(model: Any) -> str | None:
    """``module:Class`` of a model instance, when that is importable (not ``__main__``)."""
    cls = type(model)
    if cls.__module__ in ("__main__", "builtins") or "<locals>" in cls.__qualname__:
        return None
    return f"{cls.__module__}:{cls.__qualname__}"


def default_loss(requested: str | None, meta: Mapping[str, Any]) -> str:
    """``requested``, else the import-path loss a checkpoint was trained with, else cross-entropy.

    A recorded import path is reused: that is how a user's loss survives a rerun without --loss.
    Built-in losses keep the long-standing default (cross-entropy), so existing files resume as
    they were made; a recorded Python callable's name is not an import path and is not reused.
    """
    if requested:
        return requested
    recorded = meta.get("loss")
    return recorded if is_import_path(recorded) else "crossentropy"
