"""Synthetic surfaces for the plotting tests: analytic values whose minimum is known exactly."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

# A non-square grid, asymmetric in x, with the bowl's minimum off-centre at (X0, Y0).
X0, Y0 = 1.2, -0.2


def grid(nx: int = 31, ny: int = 17) -> tuple[np.ndarray, np.ndarray]:
    return np.linspace(-1.0, 2.0, nx), np.linspace(-0.5, 0.5, ny)


def bowl(x: np.ndarray, y: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """``(len(y), len(x))`` values, ``z[j, i] = f(x[i], y[j])``: an elliptic bowl at (X0, Y0) plus a wall."""
    X, Y = np.meshgrid(x, y)
    return floor + (X - X0) ** 2 + 3.0 * (Y - Y0) ** 2 + 20.0 * np.maximum(0.0, X - 1.6) ** 2


def accuracy(loss: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + loss)


def write_surface(path: Path, x: np.ndarray, y: np.ndarray | None, arrays: Mapping[str, np.ndarray],
                  attrs: Mapping[str, object] | None = None) -> Path:
    """Write a surface h5 by hand, following GUIDE.md section 4 (independent of landscape.surface)."""
    import h5py

    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        if y is not None:
            f["ycoordinates"] = y
        done = None
        for name, values in arrays.items():
            f[name] = values
            done = np.isfinite(values) if done is None else done & np.isfinite(values)
        f["done"] = done
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def is_pdf(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:5] == b"%PDF-"
