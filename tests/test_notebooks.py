"""The notebooks run top to bottom on a fresh kernel, and their committed outputs stay small and clean.

Executing them here is how the README's test command (`python -m pytest -q`) keeps them working:
a notebook that breaks when the API changes fails this test instead of failing its first reader.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = ("01_quickstart.ipynb", "02_batch_size_and_sharpness.ipynb", "03_hessian_spectrum.ipynb",
            "04_bring_your_own_model.ipynb")
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
MAX_BYTES = 600_000  # committed with outputs: figures as PNGs, nothing bulky
# Private names of the package (landscape._x, landscape.mod._y, from landscape.mod import _z): notebooks
# show the public API only.
PRIVATE = re.compile(r"\blandscape(?:\.\w+)*\._\w+|\bfrom\s+landscape[\w.]*\s+import\s+(?:.*[\s,(])?_\w+")
NOISE = ("application/vnd.jupyter.widget-view+json", "it/s]", "s/it]")


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _outputs(nb) -> list:
    return [o for c in _code_cells(nb) for o in c.get("outputs", [])]


def _png_count(nb) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(nb))


def test_every_planned_notebook_exists():
    names = [p.name for p in NOTEBOOKS]
    assert [n for n in EXPECTED if n not in names] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_small_and_clean(path):
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert len(text.encode()) < MAX_BYTES, f"{path.name} is {len(text.encode())} bytes; shrink its figures"
    cells = _code_cells(nb)
    assert cells and all(c.execution_count is not None for c in cells), "commit the notebook executed"
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"not run top to bottom in one go: {counts}"
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert _png_count(nb) >= 1, "a notebook of this project shows at least one figure"
    for noise in NOISE:
        assert noise not in text, f"{path.name} carries progress-bar/widget output ({noise!r}); use progress=False"
    source = "\n".join(c.source for c in cells)
    assert PRIVATE.findall(source) == [], "notebooks use the public API only"


def test_private_name_check_catches_what_it_should():
    """The static check above must flag private access and leave public calls alone."""
    assert PRIVATE.search("landscape.surface._subset(x)")
    assert PRIVATE.search("from landscape.hessian.hvp import _helper")
    assert PRIVATE.search("from landscape.plot import contour, _levels")
    assert not PRIVATE.search("landscape.compute_surface(model, d, data, x)")
    assert not PRIVATE.search("from landscape.plot import compare_curves, contour")


def _run_params() -> list:
    """One param per notebook; those that launch mpirun carry the ``mpi`` marker too."""
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.mpi] if "mpirun" in p.read_text(encoding="utf-8") else [])
            for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("path", _run_params())
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    """Execute on a fresh python3 kernel in an empty directory; any cell error fails the test."""
    # The kernel inherits the environment: let it draw inline (the suite sets Agg for itself).
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on any error
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert _png_count(nb) >= 1, f"{path.name} drew no figure when executed"
