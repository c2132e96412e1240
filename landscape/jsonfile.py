"""JSON records that are either whole or absent.

Training logs, sweep records and measure caches are read back to decide what to skip on a
rerun, so a run killed mid-write must never leave half a file: they go through
`filewrite.atomic_path` (a temporary file beside the target, then ``os.replace``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .filewrite import atomic_path


def jsonable(value: Any) -> Any:
    """numpy arrays and scalars as plain lists and numbers, recursively (for result dicts)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _finite_or_none(value: Any) -> Any:
    """NaN and inf become null so the file is standard JSON any tool can read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(_finite_or_none(obj), f, indent=1, sort_keys=True, default=float)
            f.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any | None:
    """The file's content, or None when it is missing or not valid JSON (a foreign partial write)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
