"""Name -> object registries (models, figures, report measures) that refuse a name clash.

A second object under a taken name would silently shadow the first (a user's ``resnet`` replacing
the built-in, two figures with one name), so it is one-line error naming both. Registering the
same definition again is allowed and replaces the old one: the same object, or an object with the
same module and qualified name, which is what re-running a notebook cell that defines and
registers a model (or reloading its module) produces. Lambdas all share the qualified name
``<lambda>``, so for them the name says nothing: two are the same definition only when their code
is equal (same lines, same body), as a re-executed cell's is; two lambdas of one module registered
under one name clash.
"""
from __future__ import annotations

from typing import Any, Callable, MutableMapping

from .errors import LandscapeError


def origin(obj: Any) -> str:
    """``module:qualname`` of a function or class (what the clash message names), else its repr."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else repr(obj)


def same_definition(a: Any, b: Any) -> bool:
    """The same object, or the same named definition made again (a re-run cell, a reloaded module)."""
    if a is b:
        return True
    names = [(getattr(x, "__module__", None), getattr(x, "__qualname__", None)) for x in (a, b)]
    if None in names[0] or names[0] != names[1]:
        return False
    if "<lambda>" in names[0][1]:  # the name is no name: the code itself (compared without its file name)
        code = getattr(a, "__code__", None)
        return code is not None and code == getattr(b, "__code__", None)
    return True


def register(registry: MutableMapping[str, Any], name: str, entry: Any, kind: str,
             definition: Callable[[Any], Any] = lambda entry: entry) -> None:
    """``registry[name] = entry``, refusing a name already taken by another definition.

    ``definition`` gives the function or class an entry stands for (a figure's recipe: its ``make``).
    """
    if name in registry:
        old, new = definition(registry[name]), definition(entry)
        if not same_definition(old, new):
            raise LandscapeError(f"{kind} name {name!r} is already registered to {origin(old)}; "
                                 f"register {origin(new)} under another name")
    registry[name] = entry
