"""Resume never mixes runs: journals of other runs set aside, checks before any write, one writer,
damaged files refused, write failures one line with nothing half-written and an identical rerun."""
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import landscape
from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.journal import HEADER
from landscape.surface import load_surface

X, Y = np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)
NAMES = ("train_loss", "train_acc")


def _surface(model, dirs, data, out=None, **kw):
    return landscape.compute_surface(model, dirs, data, X, Y, out=out, progress=False, **kw)


CHILD = Path(__file__).with_name("surface_child.py")


def _in_child(mode, *args, stop_after, pause=None, stderr=None):
    """Start ``tests/surface_child.py`` (a fresh interpreter, not a fork: see its docstring); with
    ``stop_after=k`` it is SIGKILLed right after its k-th recorded point; with ``pause=dir`` it then
    waits for ``dir/go`` (signalling ``dir/paused``)."""
    cmd = [sys.executable, str(CHILD), "--stop-after", str(stop_after)]
    cmd += ["--pause", str(pause)] if pause is not None else []
    cmd += ["--stderr", str(stderr)] if stderr is not None else []
    return subprocess.Popen([*cmd, mode, *map(str, args)])


def _wait(proc):
    """The exit status, or minus the signal that ended it."""
    return proc.wait(timeout=300)


def _journal_lines(path):
    return path.with_name(path.name + ".journal").read_text().count("\n") - 1


def _hashes(directory):
    """Every file's hash, but a lock: a refused run takes over (and removes) the lock a killed one left."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
            if p.suffix != ".lock"}


def _same(a, b, names=NAMES):
    for name in names:
        assert np.array_equal(a[name], b[name]), name
    assert a.done.all() and b.done.all()


# ------------------------------------------------------------------ journals of other runs
def test_stale_journal_after_deleting_the_surface_is_set_aside(tmp_path, convnet, small_digits, capfd):
    train, _ = small_digits
    seed0, seed1 = (landscape.random_directions(convnet, n=2, seed=s) for s in (0, 1))
    out = tmp_path / "s.h5"
    child = _in_child("api", out, stop_after=5)
    assert _wait(child) == -signal.SIGKILL and _journal_lines(out) == 5
    out.unlink()  # the attack: delete the surface, keep its journal, ask for other directions
    capfd.readouterr()
    resumed = _surface(convnet, seed1, train, out)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "surface file is gone" in err[0]
    assert (tmp_path / "s.h5.journal.stale").exists() and not (tmp_path / "s.h5.journal").exists()
    _same(resumed, _surface(convnet, seed1, train))  # no seed-0 value folded in
    assert resumed.attrs["directions"] == landscape.surface.directions_fingerprint(seed1)


def test_journal_lines_over_finished_points_and_unknown_names_are_not_folded(tmp_path, convnet, small_digits, capfd):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=2, seed=0)
    out = tmp_path / "s.h5"
    reference = _surface(convnet, dirs, train, out)
    with h5py.File(out, "a") as f:  # points 1, 3, 5... not done yet
        done = f["done"][()]
        done.reshape(-1)[1::2] = False
        f["done"][...] = done
        key = f.attrs["journal_key"]
    lines = [{"journal": HEADER, "key": key},
             {"p": 0, "v": {"train_loss": 123.0, "train_acc": 0.0}},  # over a finished point
             {"p": 1, "v": {"train_loss": 7.0, "train_acc": 0.0, "bogus": 1.0}}]  # a name no point has
    out.with_name("s.h5.journal").write_text("".join(json.dumps(x) + "\n" for x in lines))
    read = load_surface(out)  # what render reads
    assert read["train_loss"].flat[0] == reference["train_loss"].flat[0] and not read.done.flat[1]
    assert "bogus" not in read and "dropped 1 damaged line" in capfd.readouterr().err
    assert main(["render", str(out), "--kinds", "contour", "--out", str(tmp_path / "figs")]) == 0
    assert "dropped 1 damaged line" in capfd.readouterr().err
    resumed = _surface(convnet, dirs, train, out)
    assert "dropped 1 damaged line" in capfd.readouterr().err
    _same(resumed, reference)
    assert "bogus" not in load_surface(out)


# ------------------------------------------------------------------ through the CLI
def _cli(out, ckpt, *extra):
    return main(_cli_args(out, ckpt, *extra))


def _cli_args(out, ckpt, *extra):
    return ["surface", "--ckpt", str(ckpt), "--x", "-1:1:5", "--y", "-1:1:3", "--samples", "100",
            "--splits", "train", "--no-progress", "--threads", "1", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, trained_ckpt):
    out = tmp_path_factory.mktemp("reference")
    assert _cli(out, trained_ckpt) == 0
    return load_surface(out / "random_2d.h5")


def test_refused_reruns_leave_every_file_byte_identical(tmp_path, trained_ckpt, reference, capsys):
    assert _wait(_in_child("cli", *_cli_args(tmp_path, trained_ckpt), stop_after=6)) == -signal.SIGKILL
    before = _hashes(tmp_path)
    assert set(before) == {"random_2d.h5", "random_2d.h5.journal", "random_2d_directions.h5"}
    assert (tmp_path / "random_2d.h5.lock").exists()  # left by the killed run, its pid dead
    capsys.readouterr()
    other_layout = "channels_last" if reference.attrs["layout"] == "contiguous" else "contiguous"
    for extra, says in [(["--seed", "1"], "directions="), (["--batch-size", "7"], "leave out --batch-size"),
                        (["--layout", other_layout], "leave out --layout"), (["--samples", "99"], "samples="),
                        (["--precision", "bf16"], "leave out --precision")]:
        assert _cli(tmp_path, trained_ckpt, *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
        assert _hashes(tmp_path) == before, extra
    assert _cli(tmp_path, trained_ckpt) == 0  # the stale lock of the killed run is taken over
    _same(load_surface(tmp_path / "random_2d.h5"), reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random_2d.h5", "random_2d_directions.h5"]


def test_second_writer_refused_first_identical_to_single_run(tmp_path, trained_ckpt, reference, capsys):
    child = _in_child("cli", *_cli_args(tmp_path, trained_ckpt), stop_after=3, pause=tmp_path)
    try:
        while not (tmp_path / "paused").exists():
            assert child.poll() is None, "the first writer died"
            time.sleep(0.02)
        before = _hashes(tmp_path)
        capsys.readouterr()
        assert _cli(tmp_path, trained_ckpt) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"being written by another process (pid {child.pid}" in err[0]
        assert _hashes(tmp_path) == before
    finally:
        (tmp_path / "go").touch()
    assert _wait(child) == 0
    _same(load_surface(tmp_path / "random_2d.h5"), reference)
    assert not (tmp_path / "random_2d.h5.lock").exists()


def test_unspecified_precision_resumes_as_the_file_was_made(tmp_path, trained_ckpt):
    def run(*extra):
        return main(["surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:4", "--samples", "50", "--splits", "train",
                     "--no-progress", "--out", str(tmp_path), *extra])
    assert run("--precision", "bf16") == 0
    out = tmp_path / "random_1d.h5"
    whole = load_surface(out)
    with h5py.File(out, "a") as f:
        f["done"][...] = [True, False, True, False]
    assert run() == 0
    again = load_surface(out)
    assert again.attrs["precision"] == "bf16" and np.array_equal(again["train_loss"], whole["train_loss"])


def test_explicit_value_changing_settings_refused_unspecified_taken_from_file(tmp_path, convnet, small_digits):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=2, seed=0)
    out = tmp_path / "s.h5"
    _surface(convnet, dirs, train, out, batch_size=50)
    with pytest.raises(LandscapeError, match="batch_size=50, this command asks for batch_size=64"):
        _surface(convnet, dirs, train, out, batch_size=64)
    with pytest.raises(LandscapeError, match="layout=contiguous, this command asks for layout=channels_last"):
        _surface(convnet, dirs, train, out, batch_size=50, layout="channels_last")
    with pytest.raises(LandscapeError, match="dtype=float32, this command asks for dtype=float64"):
        _surface(convnet.double(), dirs, train, out, batch_size=50)


# ------------------------------------------------------------------ write failures
class FullDisk:
    """Writes to files whose path contains ``match`` fail with ENOSPC once ``after`` of them went
    through: a disk filling up, injected at ``os.write`` (the file layer)."""

    def __init__(self, monkeypatch, match, after, code=errno.ENOSPC):
        self.monkeypatch, real, count = monkeypatch, os.write, [0]
        self.point_lines = 0  # journal lines of points that went through whole

        def write(fd, data):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if match in target:
                count[0] += 1
                if count[0] > after:
                    raise OSError(code, os.strerror(code))
                self.point_lines += bytes(data).startswith(b'{"p"')
            return real(fd, data)
        monkeypatch.setattr(os, "write", write)

    def free_space(self):
        self.monkeypatch.undo()


@pytest.mark.parametrize("match, after, kept, code", [
    # nothing written yet: no surface, no journal
    ("random_2d_directions.h5", 0, set(), errno.ENOSPC),
    # a point's line fails after 5 writes: the last flush puts the points before it in the h5 file
    ("random_2d.h5.journal", 5, {"random_2d.h5", "random_2d_directions.h5"}, errno.ENOSPC),
    # every flush after the first (empty) h5 file fails: the points stay in the journal
    (".random_2d.h5.", 1, {"random_2d.h5", "random_2d.h5.journal", "random_2d_directions.h5"}, errno.ENOSPC),
    (".random_2d.h5.", 1, {"random_2d.h5", "random_2d.h5.journal", "random_2d_directions.h5"}, errno.EIO),
])
def test_full_disk_stops_with_one_line_keeps_points_and_rerun_is_identical(tmp_path, trained_ckpt, reference,
                                                                          monkeypatch, capsys, match, after, kept,
                                                                          code):
    capsys.readouterr()
    disk = FullDisk(monkeypatch, match, after, code)
    assert _cli(tmp_path, trained_ckpt) == 2
    disk.free_space()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{os.strerror(code).lower()} (errno {code})" in err[0], err
    assert {p.name for p in tmp_path.iterdir()} == kept  # no temporary file, no lock
    if "journal" in match:
        assert load_surface(tmp_path / "random_2d.h5").done.sum() == disk.point_lines >= 1
    elif kept:
        kept_points = load_surface(tmp_path / "random_2d.h5").done.sum()
        assert kept_points == _journal_lines(tmp_path / "random_2d.h5") >= 1
    assert _cli(tmp_path, trained_ckpt) == 0
    _same(load_surface(tmp_path / "random_2d.h5"), reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random_2d.h5", "random_2d_directions.h5"]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected ENOSPC tests cover the logic")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path):
    """Write ``path`` until the file system is full, down to the last byte."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC


def test_real_full_disk_stops_keeps_points_and_resumes_identically(small_disk, tmp_path, trained_ckpt, reference):
    out, log = small_disk / "s", tmp_path / "stderr.txt"
    child = _in_child("cli", *_cli_args(out, trained_ckpt), stop_after=3, pause=tmp_path, stderr=log)
    try:
        while not (tmp_path / "paused").exists():
            assert child.poll() is None, "the run died early"
            time.sleep(0.02)
        _fill(small_disk / "filler")
    finally:
        (tmp_path / "go").touch()
    assert _wait(child) == 2
    err = log.read_text().strip().splitlines()
    assert len(err) == 1 and "no space left on device (errno 28)" in err[0], err
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.suffix == ".lock"]
    assert load_surface(out / "random_2d.h5").done.sum() >= 3  # every point finished before the disk filled
    (small_disk / "filler").unlink()
    assert _cli(out, trained_ckpt) == 0
    _same(load_surface(out / "random_2d.h5"), reference)


# ------------------------------------------------------------------ damaged surface files
def _drop(name, replace=None):
    def damage(f):
        del f[name]
        if replace is not None:
            replace(f)
    return damage


def _set_x_nan(f):
    x = f["xcoordinates"][()]
    x[1] = np.nan
    f["xcoordinates"][...] = x


DAMAGE = {
    "no done": (_drop("done"), "no 'done' mask"),
    "done of another size": (_drop("done", lambda f: f.create_dataset("done", data=np.ones(5, bool))),
                             "'done' should be 12 flags"),
    "string array": (_drop("train_loss", lambda f: f.create_dataset("train_loss", data=np.full((3, 4), b"x"))),
                     "'train_loss' is not an array of numbers"),
    "group for an array": (_drop("train_acc", lambda f: f.create_group("train_acc")), "'train_acc' is not an array"),
    "array of wrong shape": (_drop("train_loss", lambda f: f.create_dataset("train_loss", data=np.zeros((4, 3)))),
                             "'train_loss' has shape (4, 3), the grid is (3, 4)"),
    "non-finite coordinates": (_set_x_nan, "'xcoordinates' holds non-finite coordinates"),
    "string coordinates": (_drop("ycoordinates", lambda f: f.create_dataset("ycoordinates", data=[b"a", b"b"])),
                           "'ycoordinates' is not a 1-D array of numbers"),
    "not h5": ("text", "is not a readable h5 file"),
    "cut in half": ("half", "h5 file"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_surface_file_refused_with_reason_and_fix_render_never_crashes(tmp_path, convnet, small_digits,
                                                                              capsys, case):
    train, _ = small_digits
    dirs = landscape.random_directions(convnet, n=2, seed=0)
    out = tmp_path / "s.h5"
    _surface(convnet, dirs, train, out, batch_size=50)
    damage, reason = DAMAGE[case]
    if damage == "text":
        out.write_text("not an h5 file\n")
    elif damage == "half":
        out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    else:
        with h5py.File(out, "a") as f:
            damage(f)
    before = _hashes(tmp_path)
    with pytest.raises(LandscapeError) as e:
        load_surface(out)
    assert reason in str(e.value) and "compute it again" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LandscapeError, match="delete the file") as e:
        _surface(convnet, dirs, train, out, batch_size=50)
    assert reason in str(e.value)
    assert _hashes(tmp_path) == before and not (tmp_path / "s.h5.lock").exists()
    capsys.readouterr()
    assert main(["render", str(out), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0]
