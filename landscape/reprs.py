"""Short reprs for result objects: numbers in full, arrays by shape and range, dicts by size.

A dataclass repr prints every element of every array: a `DensityResult` in a notebook became
thousands of numbers. Results use `ShortRepr` instead, which keeps the scalars (what one wants to
read) and summarises the rest.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def _brief(value: Any) -> str:
    if hasattr(value, "detach") and hasattr(value, "shape"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value, precision=4, separator=", ")
        shape = "x".join(str(s) for s in value.shape)
        finite = value[np.isfinite(value)] if value.dtype.kind in "fc" else value.ravel()
        span = f", {finite.min():.4g}..{finite.max():.4g}" if finite.size and value.dtype.kind in "fiu" else ""
        return f"array({shape}{span})"
    if isinstance(value, dict):
        return f"{{{len(value)} settings}}" if len(value) > 3 else repr(value)
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{len(value)} items]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def short_repr(obj: Any) -> str:
    """``Name(field=value, ...)`` with scalars first and arrays, tensors and dicts summarised."""
    fields = [f.name for f in dataclasses.fields(obj) if f.repr]
    values = {name: getattr(obj, name) for name in fields}
    scalars = [n for n, v in values.items() if isinstance(v, (int, float, bool, str, type(None)))]
    rest = [n for n in fields if n not in scalars]
    return f"{type(obj).__name__}(" + ", ".join(f"{n}={_brief(values[n])}" for n in scalars + rest) + ")"


class ShortRepr:
    """Mixin for result dataclasses (declared with ``@dataclass(repr=False)``): a repr that fits a line or two."""

    def __repr__(self) -> str:
        return short_repr(self)
