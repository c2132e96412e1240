"""``landscape info``: the shift backend it names is the one in use; versions are the installed ones."""
from __future__ import annotations

import importlib
import json

import torch

import landscape
from landscape.cli import main

shift_mod = importlib.import_module("landscape.ops.shift")


def test_info_json_matches_runtime(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["landscape"] == landscape.__version__
    assert info["torch"] == torch.__version__
    assert info["shift_backend"]["cpu"] == ("extension" if shift_mod._ext is not None else "reference")
    assert info["devices"]["cuda_available"] == torch.cuda.is_available()
    assert len(info["devices"]["cuda_devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    try:
        from mpi4py import MPI
    except ImportError:
        assert info["mpi"]["available"] is False
    else:
        assert info["mpi"]["library"].split()[0] in MPI.Get_library_version()


def test_info_table_without_extension(monkeypatch, capsys):
    monkeypatch.setattr(shift_mod, "_ext", None)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "shift backend    cpu: reference" in out
    assert "not installed (pip install --no-build-isolation ./cuda_ext)" in out
    assert f"torch            {torch.__version__}" in out
