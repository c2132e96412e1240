"""The command line: help everywhere, bad input as one line and a non-zero exit, no traceback."""
import pytest

from conftest import run_cli
from landscape.cli import build_parser


def test_every_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"plot", "surface", "render", "demo", "train"} <= set(commands)
    for name in commands:
        r = run_cli(name, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, name


@pytest.mark.parametrize("args, fragment", [
    (["surface", "--ckpt", "missing.pt"], "does not exist"),
    (["surface", "--ckpt", "x.pt", "--x", "1:0:5"], "MAX must exceed MIN"),
    (["surface", "--ckpt", "x.pt", "--x", "banana"], "MIN:MAX:COUNT"),
    (["render", "missing.h5"], "does not exist"),
])
def test_bad_input_is_one_line_and_nonzero(args, fragment):
    r = run_cli(*args)
    assert r.returncode != 0
    assert fragment in r.stderr and "Traceback" not in r.stderr
    assert len([l for l in r.stderr.splitlines() if l.startswith("landscape")]) == 1


def test_negative_ranges_parse(trained_ckpt, tmp_path):
    r = run_cli("surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:3", "--samples", "50", "--out",
                str(tmp_path), "--no-progress")
    assert r.returncode == 0, r.stderr


def test_wrong_dataset_for_model_is_one_line(trained_ckpt, tmp_path):
    r = run_cli("surface", "--ckpt", str(trained_ckpt), "--dataset", "mnist1d", "--x", "-1:1:3", "--out",
                str(tmp_path), "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "shape" in r.stderr
