"""Output files that are whole or absent, and write failures that are one line.

An h5 file is built in memory and then written with plain ``os.write`` into a temporary file
that replaces the target, so a full disk, an I/O error or a read-only file system surfaces as an
`OSError` from our own write: it becomes one `LandscapeError` naming the file, the temporary file
is removed and the target keeps its old content. HDF5 never sees the failing disk (a failed
flush inside HDF5 left half-closed handles behind and ended in a segfault at exit).
"""
from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Callable

from .errors import LandscapeError

_WHAT_TO_DO = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (disk quota exceeded)",
    errno.EROFS: "write to a writable place (--out)",
    errno.EACCES: "check the permissions or write elsewhere (--out)",
    errno.EPERM: "check the permissions or write elsewhere (--out)",
}


def write_error(path: str | os.PathLike, e: OSError, then: str = "then rerun the same command") -> LandscapeError:
    """The one-line error for a failed write of ``path``: what happened and what to do."""
    reason = os.strerror(e.errno).lower() if e.errno else str(e)
    todo = _WHAT_TO_DO.get(e.errno, "check the disk")
    return LandscapeError(f"could not write {path}: {reason} (errno {e.errno}); {todo}, {then}")


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (a short write is not an error by itself)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_bytes_atomic(path: str | os.PathLike, data: bytes, then: str = "then rerun the same command") -> Path:
    """Replace ``path`` with ``data`` in one step, or raise `write_error` leaving it as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)  # some file systems (NFS) report a failed write only here
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise write_error(path, e, then) from None
    return path


def h5_image(fill: Callable) -> bytes:
    """The bytes of an h5 file that ``fill(h5py.File)`` populates, built in memory."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    return buffer.getvalue()


def save_h5_atomic(path: str | os.PathLike, fill: Callable, then: str = "then rerun the same command") -> Path:
    """Write the h5 file ``fill`` describes to ``path`` whole, or fail with one line and no leftovers."""
    return write_bytes_atomic(path, h5_image(fill), then)
