"""One writer per output: the lock refuses a second holder, and locks of dead writers are taken over."""
import errno
import os
import subprocess
import sys

import pytest

from landscape.errors import LandscapeError
from landscape.lockfile import OutputLock


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_second_holder_refused_with_the_first_ones_pid_and_release_removes_the_file(tmp_path):
    target = tmp_path / "out" / "s.h5"
    with OutputLock(target) as first:
        assert first.path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LandscapeError, match=rf"s.h5 is being written by another process \(pid {os.getpid()}, "):
            OutputLock(target).acquire()
    assert not first.path.exists()
    OutputLock(target).acquire().release()  # free again


def test_lock_file_of_a_dead_writer_is_taken_over(tmp_path):
    target = tmp_path / "s.h5"
    lock = tmp_path / "s.h5.lock"
    lock.write_text(f"{_dead_pid()}\n")
    with OutputLock(target):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


@pytest.mark.parametrize("alive", [True, False])
def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch, alive):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "no locks available")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    target = tmp_path / "s.h5"
    other = os.getppid() if alive else _dead_pid()
    (tmp_path / "s.h5.lock").write_text(f"{other}\n")
    if alive:
        with pytest.raises(LandscapeError, match=f"pid {other}"):
            OutputLock(target).acquire()
        assert (tmp_path / "s.h5.lock").read_text() == f"{other}\n"
    else:
        OutputLock(target).acquire().release()


def test_read_only_place_is_one_line(tmp_path, monkeypatch):
    real = os.open

    def read_only(path, *a, **k):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(LandscapeError, match=r"s.h5.lock: read-only file system \(errno 30\); write to a writable"):
        OutputLock(tmp_path / "s.h5").acquire()
