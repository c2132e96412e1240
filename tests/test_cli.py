"""The command line: help everywhere, bad input as one line and a non-zero exit, no traceback."""
import numpy as np
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
    (["surface", "--ckpt", "x.pt", "--eig", "--eig-tol", "-1"], "expected a positive number"),
    (["surface", "--ckpt", "x.pt", "--eig", "--eig-samples", "0"], "expected a positive integer"),
    (["surface", "--ckpt", "x.pt", "--eig", "--eig-max-iter", "1"], "expected an integer >= 2"),
    (["plot", "--ckpt", "x.pt", "--eig-samples", "200"], "applies only with --eig"),
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


def test_plot_with_eig_end_to_end_then_resume_rules(trained_ckpt, tmp_path, capsys):
    from landscape.cli import main
    from landscape.surface import load_surface

    common = ["--ckpt", str(trained_ckpt), "--x", "-1:1:3", "--y", "-1:1:3", "--samples", "200", "--splits", "train",
              "--no-progress", "--out", str(tmp_path)]
    r = run_cli("plot", *common, "--threads", "1", "--eig", "--eig-samples", "200")
    assert r.returncode == 0, r.stderr
    assert "random_2d_convexity.png" in r.stdout
    assert (tmp_path / "random_2d_convexity.png").stat().st_size > 1000
    s = load_surface(tmp_path / "random_2d.h5")
    assert s.done.all() and np.all(np.isfinite(s["max_eig"])) and np.all(s["max_eig"] > 0)
    assert np.all(s["min_eig"] <= s["max_eig"]) and s.attrs["eig_samples"] == 200
    # in-process from here on: nothing is computed, so no need for a fresh interpreter
    assert main(["surface", *common, "--eig", "--eig-samples", "200"]) == 0  # the same settings
    assert "nothing to do" in capsys.readouterr().out
    for extra, fragment in [(["--eig", "--eig-samples", "200", "--eig-tol", "1e-4"], "eig_tol=0.001"),
                            (["--eig", "--eig-samples", "200", "--eig-seed", "3"], "eig_subset="),  # another subset
                            ([], "was computed with --eig --eig-tol 0.001 --eig-max-iter 100 --eig-samples 200")]:
        assert main(["surface", *common, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1


def test_fold_bn_flag_reaches_the_surface_and_its_resume_check(trained_ckpt, tmp_path, capsys):
    from landscape.cli import main
    from landscape.surface import load_surface

    common = ["surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:3", "--samples", "100", "--splits", "train",
              "--no-progress", "--threads", "1", "--out", str(tmp_path)]
    assert main([*common, "--fold-bn", "off"]) == 0
    assert load_surface(tmp_path / "random_1d.h5").attrs["fold_bn"] == 0
    capsys.readouterr()
    assert main([*common, "--fold-bn", "on"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fold_bn=0, this command asks for fold_bn=3" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("source, fragment", [
    (["--dir-file", "d.h5"], "with --dir-file none is drawn"),
    (["--ckpt2", "b.pt", "--ckpt3", "c.pt", "--y", "-1:1:3"], "with --ckpt3 none is drawn"),
    (["--ckpt2", "b.pt"], "with --ckpt2 without --y none is drawn"),
])
@pytest.mark.parametrize("command", ["surface", "plot"])
def test_bias_dir_where_no_random_direction_is_drawn_is_refused(command, source, fragment, capsys):
    from landscape.cli import main

    # refused before any file is opened (none of these exist), in-process
    assert main([command, "--ckpt", "a.pt", "--ignore", "none", "--bias-dir", "weights", *source]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "drop --bias-dir" in err[0], err


@pytest.mark.parametrize("flags", [["--seed", "0"], ["--norm", "filter"], ["--ignore", "none"], ["--orthogonalize"],
                                   ["--norm", "layer", "--seed", "3"]])
@pytest.mark.parametrize("command", ["surface", "plot"])
def test_random_direction_options_with_dir_file_are_refused(command, flags, capsys):
    from landscape.cli import main

    # refused before any file is opened, even when the value given is the default
    assert main([command, "--ckpt", "a.pt", "--dir-file", "d.h5", "--y", "-1:1:3", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    named = [f for f in flags if f.startswith("--")]
    assert len(err) == 1 and f"drop {', '.join(named)}" in err[0] and "--dir-file" in err[0], err


@pytest.mark.parametrize("source, flags, fragment", [
    (["--ckpt2", "b.pt", "--ckpt3", "c.pt", "--y", "-1:1:3"], ["--seed", "1"], "--ckpt3 fixes them"),
    (["--ckpt2", "b.pt"], ["--norm", "layer", "--ignore", "none"], "--ckpt2 without --y fixes them"),
    (["--ckpt2", "b.pt", "--y", "-1:1:3"], ["--orthogonalize"], "always made orthogonal to the line"),
    ([], ["--orthogonalize"], "without --y has one direction"),
])
@pytest.mark.parametrize("command", ["surface", "plot"])
def test_random_direction_options_where_no_direction_is_random_are_refused(command, source, flags, fragment, capsys):
    from landscape.cli import main

    assert main([command, "--ckpt", "a.pt", *source, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    named = [f for f in flags if f.startswith("--")]
    assert len(err) == 1 and fragment in err[0] and f"drop {', '.join(named)}" in err[0], err


def test_random_direction_options_that_shape_the_random_y_of_ckpt2_are_kept():
    from landscape.cli import build_parser
    from landscape.cli.surface import random_direction_options

    args = build_parser().parse_args(["surface", "--ckpt", "a.pt", "--ckpt2", "b.pt", "--y", "-1:1:3", "--seed", "5",
                                      "--norm", "layer"])
    assert random_direction_options(args) == {"norm": "layer", "ignore": "biasbn", "seed": 5, "orthogonalize": False}


def test_random_direction_defaults_apply_when_not_given(capsys):
    from landscape.cli import build_parser, main
    from landscape.cli.surface import random_direction_options

    assert main(["surface", "--ckpt", "a.pt", "--dir-file", "d.h5"]) == 2  # not refused for them: the files are missing
    assert "'a.pt' does not exist" in capsys.readouterr().err
    args = build_parser().parse_args(["surface", "--ckpt", "a.pt"])
    assert random_direction_options(args) == {"norm": "filter", "ignore": "biasbn", "seed": 0, "orthogonalize": False}
    args = build_parser().parse_args(["plot", "--ckpt", "a.pt", "--seed", "4", "--orthogonalize", "--norm", "layer",
                                      "--x", "-1:1:3", "--y", "-1:1:3"])
    assert random_direction_options(args) == {"norm": "layer", "ignore": "biasbn", "seed": 4, "orthogonalize": True}


def test_default_out_dir_keeps_the_runs_of_a_sweep_apart():
    from pathlib import Path

    from landscape.cli.common import default_out_dir

    assert default_out_dir("runs/lm/bs16/model.pt") == Path("out/bs16")
    assert default_out_dir("runs/lm/bs64/model.pt") == Path("out/bs64")
    assert default_out_dir("model.pt") == default_out_dir("./model.pt") == Path("out/model")
    assert default_out_dir("ckpts/small.pt") == Path("out/small")
