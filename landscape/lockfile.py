"""One writer per output file: an advisory lock file holding the writer's pid.

``SURF.h5.lock`` is locked with ``flock`` while a run writes the surface, its journal and its
directions, so a second command on the same output is refused at once instead of computing every
point again beside the first. The kernel drops the lock when its process dies, so a lock file left
by a killed run is simply taken over (where ``flock`` is unsupported, e.g. some network file
systems, a lock whose pid is no longer running is taken over instead). Under MPI only the writing
rank holds it.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import LandscapeError
from .filewrite import write_all, write_error


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 64).split()[0])
    except (OSError, ValueError, IndexError):
        return None


class OutputLock:
    """``with OutputLock(path):`` holds ``path.lock`` or raises a one-line `LandscapeError`."""

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise write_error(self.path, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN) or (
                        holder is not None and holder != os.getpid() and _pid_alive(holder)):
                    os.close(fd)
                    raise LandscapeError(
                        f"{self.target} is being written by another process (pid {holder or 'unknown'}, lock file "
                        f"{self.path}); wait for it to finish, or use another --out") from None
                # no flock here and the recorded writer is gone: take the lock over
            try:  # the holder may have released (and deleted) the file between our open and lock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                write_all(fd, f"{os.getpid()}\n".encode())
            except OSError as e:
                self._fd = fd
                self.release()
                raise write_error(self.path, e) from None
            self._fd = fd
            return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked, so no one locks a file about to vanish
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
