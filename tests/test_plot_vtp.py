"""ParaView export: the XML parses and its points and quads match the grid, checked point by point."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.plot.vtp import write_vtp

from plot_cases import bowl, grid


def read_vtp(path):
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    piece = root.find("PolyData/Piece")

    def array(parent, name):
        node = next(a for a in piece.find(parent).findall("DataArray") if a.get("Name") == name)
        return np.array(node.text.split(), dtype=float)

    points = array("Points", "Points").reshape(-1, 3)
    conn = array("Polys", "connectivity").astype(int).reshape(-1, 4)
    offsets = array("Polys", "offsets").astype(int)
    assert int(piece.get("NumberOfPoints")) == len(points)
    assert int(piece.get("NumberOfPolys")) == len(conn) == len(offsets)
    np.testing.assert_array_equal(offsets, 4 * np.arange(1, len(conn) + 1))
    point_z = array("PointData", piece.find("PointData").get("Scalars"))
    cell_z = array("CellData", piece.find("CellData").get("Scalars"))
    return points, conn, point_z, cell_z


def test_full_grid_points_and_quads(tmp_path):
    x, y = grid(9, 5)
    z = bowl(x, y)
    points, conn, point_z, cell_z = read_vtp(write_vtp(tmp_path / "s.vtp", x, y, z))
    assert len(points) == len(x) * len(y)
    expected = [(x[i], y[j], z[j, i]) for j in range(len(y)) for i in range(len(x))]  # x fastest
    np.testing.assert_array_equal(points, expected)
    np.testing.assert_array_equal(point_z, points[:, 2])
    assert len(conn) == (len(x) - 1) * (len(y) - 1)
    dx, dy = x[1] - x[0], y[1] - y[0]
    for quad in conn:  # each quad is one grid cell: two x values, two y values, one step apart
        xs, ys = np.unique(points[quad, 0]), np.unique(points[quad, 1])
        assert len(xs) == 2 and len(ys) == 2
        assert xs[1] - xs[0] == pytest.approx(dx) and ys[1] - ys[0] == pytest.approx(dy)
    np.testing.assert_allclose(cell_z, points[conn, 2].mean(axis=1))


def test_nan_points_and_their_cells_are_left_out(tmp_path):
    x, y = grid(9, 5)
    z = bowl(x, y)
    z[2, 3] = np.nan
    z[4, 8] = np.inf
    points, conn, _, _ = read_vtp(write_vtp(tmp_path / "h.vtp", x, y, z))
    finite = np.isfinite(z)
    assert len(points) == finite.sum()
    complete_cells = sum(finite[j:j + 2, i:i + 2].all() for j in range(len(y) - 1) for i in range(len(x) - 1))
    assert len(conn) == complete_cells
    assert np.isfinite(points).all()


def test_log_and_zmax_follow_h52vtp(tmp_path):
    x, y = grid(9, 5)
    z = bowl(x, y)
    points, *_ = read_vtp(write_vtp(tmp_path / "l.vtp", x, y, z, log=True, zmax=2.0))
    np.testing.assert_allclose(points[:, 2], np.log(np.minimum(z, 2.0) + 0.1).ravel())


def test_nothing_to_export_is_a_clear_error(tmp_path):
    x, y = grid(5, 3)
    with pytest.raises(LandscapeError, match="no finite"):
        write_vtp(tmp_path / "e.vtp", x, y, np.full((3, 5), np.nan))
