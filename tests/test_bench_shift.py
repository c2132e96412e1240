"""``landscape bench --op shift`` on a small tensor: parsing, the result's keys and their arithmetic."""
from __future__ import annotations

import json

import pytest
import torch

from landscape.bench.shift import parse_dtype, parse_shape
from landscape.cli import main
from landscape.ops import backend


def test_bench_shift_cli_reports_bandwidth(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--op", "shift", "--shape", "2,18,8,8", "--dtype", "float64", "--repeat", "1",
                 "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "copy (clone)" in printed and "reference forward" in printed
    result = json.loads(out.read_text())
    assert result["shape"] == [2, 18, 8, 8] and result["dtype"] == "float64" and result["device"] == "cpu"
    assert result["bytes_moved"] == 2 * 2 * 18 * 8 * 8 * 8
    assert result["copy_gbps"] == pytest.approx(result["bytes_moved"] / (result["copy_ms"] / 1e3) / 1e9)
    assert result["backend"] == backend("cpu")
    if result["backend"] == "extension":
        assert result["matches_reference"] is True
        assert result["fraction_of_copy"] == pytest.approx(result["copy_ms"] / result["extension_forward_ms"])
        assert "matches reference: True" in printed


def test_bench_json_never_overwrites_a_file(tmp_path, capsys, monkeypatch):
    import landscape.bench.shift

    out = tmp_path / "bench.json"
    out.write_text("an earlier result\n")
    args = ["bench", "--op", "shift", "--shape", "1,9,4,4", "--repeat", "1", "--device", "cpu", "--json", str(out)]
    assert main(args) == 2  # refused before the bench runs
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--json" in err[0] and "already exists; remove it or pick another file name" in err[0]
    assert out.read_text() == "an earlier result\n"
    out.unlink()
    bench = landscape.bench.shift.run

    def racing(a):  # another process writes the file while the bench runs
        result = bench(a)
        out.write_text("theirs\n")
        return result

    monkeypatch.setattr(landscape.bench.shift, "run", racing)
    assert main(args) == 2
    printed, err = capsys.readouterr()
    assert out.read_text() == "theirs\n" and "the result is the JSON line above" in err
    assert json.loads(printed.strip().splitlines()[-1])["shape"] == [1, 9, 4, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # no temporary file left


def test_bench_shift_bad_arguments_are_one_line_errors(capsys):
    assert main(["bench", "--op", "shift", "--shape", "2,18,8"]) == 2
    assert "--shape must be four positive integers" in capsys.readouterr().err
    assert main(["bench", "--op", "shift", "--dtype", "int8"]) == 2
    assert "--dtype must be one of" in capsys.readouterr().err


def test_parsers():
    assert parse_shape("128,96,32,32") == (128, 96, 32, 32)
    assert parse_shape("4x9x8x8") == (4, 9, 8, 8)
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype("float16") is torch.float16
