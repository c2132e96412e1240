"""Keyword names that changed, still accepted for one release with a `DeprecationWarning`.

Public names are one word per idea: ``samples`` for a subset size, ``n_probes`` for Monte Carlo
draws (trace probes, SLQ start vectors, sharpness perturbations), ``n_hvps`` for the count of
Hessian-vector products. Code written against the older names (``n_runs``, ``n_samples`` for
draws, ``n_matvecs``) keeps working until the next release, with a warning that says what to use.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, TypeVar

from .errors import LandscapeError

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(**old_to_new: str) -> Callable[[F], F]:
    """Accept each old keyword as its new name (with a `DeprecationWarning`); both at once is an error."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise LandscapeError(f"{fn.__name__}: pass {new} only ({old} is its old name)")
                    warnings.warn(f"{fn.__name__}({old}=...) is deprecated; use {new}=", DeprecationWarning,
                                  stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
