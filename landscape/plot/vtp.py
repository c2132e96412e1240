"""ParaView export: a 2D surface as VTK XML PolyData (``.vtp``), written directly (no vtk needed).

Every finite grid point becomes a point ``(x, y, z)``; every grid cell whose four corners are
finite becomes a quad, so a half-computed surface exports with holes instead of garbage (VTK's
ASCII reader has no NaN). As in Li et al.'s ``h52vtp``, ``zmax`` clips values above it and ``log``
writes ``ln(z + 0.1)`` (clipping first), and each quad carries the mean of its corners as cell
data. Points run with x fastest, the surface file's own order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import LandscapeError
from ..filewrite import write_text_atomic
from .canvas import grid_arrays

LOG_OFFSET = 0.1  # Li et al.'s h52vtp: z -> log(z + 0.1)


def vtp_values(values: np.ndarray, log: bool = False, zmax: float | None = None) -> np.ndarray:
    """The heights written to the file: clipped at ``zmax``, then ``ln(z + 0.1)`` with ``log``."""
    z = np.asarray(values, dtype=np.float64).copy()
    z[~np.isfinite(z)] = np.nan
    if zmax is not None:
        z = np.minimum(z, float(zmax))
    if log:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.log(z + LOG_OFFSET)
        z[~np.isfinite(z)] = np.nan
    return z


def _number(v) -> str:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(int(v))


def _data_array(name: str, dtype: str, values: np.ndarray, components: int = 1, per_line: int = 6) -> str:
    """One ASCII ``DataArray``; ``per_line`` numbers per text line (a point's or a quad's worth)."""
    values = np.asarray(values, dtype=np.float64 if dtype.startswith("Float") else np.int64)
    flat = [_number(v) for v in values.ravel()]
    body = "".join(f"          {' '.join(flat[i:i + per_line])}\n" for i in range(0, len(flat), per_line))
    rng = f' RangeMin="{_number(values.min())}" RangeMax="{_number(values.max())}"' if values.size and components == 1 \
        else ""
    return (f'        <DataArray type="{dtype}" Name={quoteattr(name)} NumberOfComponents="{components}" '
            f'format="ascii"{rng}>\n{body}        </DataArray>\n')


def write_vtp(path: str | os.PathLike, x: Sequence[float], y: Sequence[float], values: np.ndarray, *,
              log: bool = False, zmax: float | None = None, name: str = "zvalue") -> Path:
    """Write the surface ``values[j, i]`` over ``(x[i], y[j])`` as ``path`` (a ``.vtp`` file) and return it.

    Point data ``name`` holds the heights (after ``zmax``/``log``); cell data ``averaged <name>``
    the mean of each quad's corners.
    """
    x, y, z = grid_arrays(x, y, values)
    z = vtp_values(z, log, zmax)
    ny, nx = z.shape
    ok = np.isfinite(z)
    if not ok.any():
        raise LandscapeError("the surface has no finite values to export yet")
    index = np.full(z.shape, -1, dtype=np.int64)
    index[ok] = np.arange(int(ok.sum()))
    X, Y = np.meshgrid(x, y)
    points = np.stack([X[ok], Y[ok], z[ok]], axis=1)
    # quad (j, i): corners (j,i), (j,i+1), (j+1,i+1), (j+1,i), counter-clockwise seen from +z
    corners = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], axis=-1).reshape(-1, 4)
    quads = corners[(corners >= 0).all(axis=1)]
    cell_values = points[quads, 2].mean(axis=1) if len(quads) else np.zeros(0)
    offsets = 4 * np.arange(1, len(quads) + 1, dtype=np.int64)

    text = ['<?xml version="1.0"?>\n',
            '<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n',
            "  <PolyData>\n",
            f'    <Piece NumberOfPoints="{len(points)}" NumberOfVerts="0" NumberOfLines="0" '
            f'NumberOfStrips="0" NumberOfPolys="{len(quads)}">\n',
            f'      <PointData Scalars={quoteattr(name)}>\n', _data_array(name, "Float64", points[:, 2]),
            "      </PointData>\n",
            f'      <CellData Scalars={quoteattr("averaged " + name)}>\n',
            _data_array(f"averaged {name}", "Float64", cell_values), "      </CellData>\n",
            "      <Points>\n", _data_array("Points", "Float64", points, components=3, per_line=6),
            "      </Points>\n",
            "      <Polys>\n", _data_array("connectivity", "Int64", quads, per_line=4),
            _data_array("offsets", "Int64", offsets), "      </Polys>\n",
            "    </Piece>\n", "  </PolyData>\n", "</VTKFile>\n"]
    return write_text_atomic(path, "".join(text), encoding="ascii")
