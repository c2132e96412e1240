"""JSON records that are either whole or absent.

Training logs, sweep records and measure caches are read back to decide what to skip on a
rerun, so a run killed mid-write must never leave half a file: write a temporary file next to
the target and ``os.replace`` it (atomic on POSIX and Windows).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator


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


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` (same suffix) to write to; it replaces ``path`` when the block
    ends without an exception and is removed otherwise: the one way files here are written whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
