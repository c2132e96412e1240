"""MPI and resume: identical arrays for 1, 2 and 8 ranks, and after a SIGKILL half-way."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import mpirun_path, run_cli
from landscape.errors import EchoedError, LandscapeError
from landscape.parallel import chunk_size, on_every_rank, on_root, run_points
from landscape.surface import load_surface

GRID = ["--x", "-1:1:9", "--y", "-1:1:7", "--samples", "300", "--no-progress", "--threads", "1"]


def _surface(out, ckpt, *extra, ranks=1):
    cmd = ["surface", "--ckpt", str(ckpt), *GRID, "--out", str(out), *extra]
    if ranks == 1:
        r = run_cli(*cmd)
    else:
        r = subprocess.run([mpirun_path(), "-n", str(ranks), sys.executable, "-m", "landscape", *cmd],
                           capture_output=True, text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-2000:]
    return load_surface(out / "random_2d.h5")


def test_serial_schedule_visits_every_point_once():
    seen = []
    run_points(lambda p: {"v": p * 2.0}, [3, 1, 2], lambda p, v: seen.append((p, v["v"])))
    assert seen == [(3, 6.0), (1, 2.0), (2, 4.0)]
    assert chunk_size(1, 8) == 1 and chunk_size(10_000, 2) == 8


def test_on_root_runs_once_and_raises_its_error():
    calls = []
    on_root(None, lambda: calls.append(1))
    assert calls == [1]

    def fail():
        raise LandscapeError("bad file")
    with pytest.raises(LandscapeError, match="bad file"):
        on_root(None, fail)


ON_ROOT_SCRIPT = """
from landscape.errors import LandscapeError
from landscape.parallel import get_comm, on_root, rank_of
comm = get_comm()
def fail():
    raise LandscapeError("only rank 0 saw this")
try:
    on_root(comm, fail)
except LandscapeError as e:
    print(f"rank {rank_of(comm)}: {e}", flush=True)
"""


@pytest.mark.mpi
@pytest.mark.skipif(mpirun_path() is None, reason="no mpirun on PATH")
def test_on_root_error_reaches_every_rank_and_none_hangs():
    r = subprocess.run([mpirun_path(), "-n", "2", sys.executable, "-c", ON_ROOT_SCRIPT], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    # (the two ranks' lines may interleave on the shared stdout, so count rather than split)
    assert r.stdout.count("only rank 0 saw this") == 2 and "rank 0: " in r.stdout and "rank 1: " in r.stdout


class GatheringComm:
    """What ``allgather`` returns on one rank of a world whose ranks raised ``errors`` (None: passed)."""

    def __init__(self, rank, errors):
        self.rank, self.errors = rank, errors

    def Get_rank(self):
        return self.rank

    def allgather(self, mine):
        assert mine == self.errors[self.rank]
        return list(self.errors)


@pytest.mark.parametrize("errors, rank0, others", [
    (["bad --out", "bad --out"], "bad --out", "bad --out"),  # everyone refuses: rank 0 says it, the rest echo
    ([None, "no such file"], "(rank 1) no such file", "no such file"),  # only rank 1: rank 0 says it, named
    (["mine", "theirs"], "mine", "mine"),
])
def test_on_every_rank_one_refusal_printed_by_rank_0(errors, rank0, others):
    def check(rank):
        def fn():
            if errors[rank]:
                raise LandscapeError(errors[rank])
            return "job"
        return fn
    with pytest.raises(LandscapeError) as e:
        on_every_rank(GatheringComm(0, errors), check(0))
    assert str(e.value) == rank0 and not isinstance(e.value, EchoedError)
    for rank in range(1, len(errors)):
        with pytest.raises(EchoedError, match=others):  # the CLI prints nothing for these
            on_every_rank(GatheringComm(rank, errors), check(rank))
    assert on_every_rank(GatheringComm(1, [None, None]), lambda: "job") == on_every_rank(None, lambda: "job") == "job"


@pytest.mark.mpi
@pytest.mark.skipif(mpirun_path() is None, reason="no mpirun on PATH")
@pytest.mark.parametrize("args, fragment", [
    (["--seed", "-1"], "argument --seed: expected a seed"),  # the parser, on every rank
    (["--dir-file", "missing.h5"], "--dir-file 'missing.h5' does not exist"),  # the job's checks, on every rank
    (["--ckpt", "/dev/null"], "cannot read /dev/null as a checkpoint"),  # rank 0's pilot
])
def test_mpirun_refusal_is_one_line_not_one_per_rank(tmp_path, trained_ckpt, args, fragment):
    cmd = ["surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:3", "--no-progress", "--out", str(tmp_path), *args]
    r = subprocess.run([mpirun_path(), "-n", "2", sys.executable, "-m", "landscape", *cmd], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 2
    assert r.stderr.count(fragment) == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.mpi
@pytest.mark.skipif(mpirun_path() is None, reason="no mpirun on PATH")
def test_mpirun_2_and_8_ranks_identical_to_one_process(tmp_path, trained_ckpt):
    one = _surface(tmp_path / "one", trained_ckpt)
    two = _surface(tmp_path / "two", trained_ckpt, ranks=2)
    eight = _surface(tmp_path / "eight", trained_ckpt, ranks=8)  # 8 ranks for 63 points on 2 cores
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert np.array_equal(one[name], two[name]), name
        assert np.array_equal(one[name], eight[name]), name
    assert one.done.all() and two.done.all() and eight.done.all()


@pytest.mark.mpi
@pytest.mark.skipif(mpirun_path() is None, reason="no mpirun on PATH")
def test_mpirun_2_ranks_eig_identical_to_one_process(tmp_path, trained_ckpt):
    eig = ["--x", "-1:1:3", "--y", "-1:1:3", "--eig", "--eig-samples", "200", "--splits", "train"]
    one = _surface(tmp_path / "one", trained_ckpt, *eig)
    two = _surface(tmp_path / "two", trained_ckpt, *eig, ranks=2)
    for name in ("train_loss", "max_eig", "min_eig", "eig_converged"):
        assert np.array_equal(one[name], two[name]), name


def test_sigkill_half_way_then_resume_is_identical(tmp_path, trained_ckpt):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "landscape", "surface", "--ckpt", str(trained_ckpt), "--x", "-1:1:21",
           "--y", "-1:1:21", "--samples", "600", "--no-progress", "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / "random_2d.h5.journal"
    deadline = time.time() + 240
    while time.time() < deadline:
        if journal.exists() and journal.read_text().count("\n") >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = load_surface(out / "random_2d.h5")
    assert 0 < partial.done.sum() < partial.done.size, "the kill should land half-way"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    resumed = load_surface(out / "random_2d.h5")
    assert resumed.done.all()
    uninterrupted = _uninterrupted(tmp_path, trained_ckpt)
    for name in ("train_loss", "test_loss", "train_acc"):
        assert np.array_equal(resumed[name], uninterrupted[name]), name


def _uninterrupted(tmp_path, ckpt):
    r = run_cli("surface", "--ckpt", str(ckpt), "--x", "-1:1:21", "--y", "-1:1:21", "--samples", "600", "--no-progress",
                "--threads", "1", "--out", str(tmp_path / "uninterrupted"))
    assert r.returncode == 0, r.stderr
    return load_surface(tmp_path / "uninterrupted" / "random_2d.h5")


def test_rerun_of_finished_surface_does_nothing(tmp_path, trained_ckpt):
    _surface(tmp_path / "s", trained_ckpt)
    r = run_cli("surface", "--ckpt", str(trained_ckpt), *GRID, "--out", str(tmp_path / "s"))
    assert r.returncode == 0 and "nothing to do" in r.stdout


def test_mismatched_surface_file_refused(tmp_path, trained_ckpt):
    _surface(tmp_path / "s", trained_ckpt)
    r = run_cli("surface", "--ckpt", str(trained_ckpt), *GRID[:4], "--samples", "200", "--no-progress",
                "--out", str(tmp_path / "s"))
    assert r.returncode != 0
    assert "samples" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.mpi
@pytest.mark.skipif(mpirun_path() is None, reason="no mpirun on PATH")
def test_mpirun_2_ranks_recomputed_bn_statistics_identical_to_one_process(tmp_path, trained_ckpt):
    bn = ["--x", "-1:1:5", "--y", "-1:1:3", "--kind", "states", "--ignore", "none", "--bn-samples", "300"]
    one = _surface(tmp_path / "one", trained_ckpt, *bn)
    two = _surface(tmp_path / "two", trained_ckpt, *bn, ranks=2)
    assert one.attrs["bn_stats"] == "recompute" and one.attrs["bn_samples"] == 300
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert np.array_equal(one[name], two[name]), name
