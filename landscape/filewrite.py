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
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; it replaces ``path`` when the block ends without an
    exception and is removed otherwise: the one way files here are written whole.

    The name is ``.NAME.PID.tmp`` (hidden, per process, recognisably temporary). Errors pass through
    as they are; `write_bytes_atomic` turns them into one line. Writers that append a suffix to a
    path (``np.savez``) must be given an open file instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def write_bytes_atomic(path: str | os.PathLike, data: bytes, then: str = "then rerun the same command") -> Path:
    """Replace ``path`` with ``data`` in one step, or raise `write_error` leaving it as it was."""
    try:
        with atomic_path(path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)  # some file systems (NFS) report a failed write only here
    except OSError as e:
        raise write_error(path, e, then) from None
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8",
                      then: str = "then rerun the same command") -> Path:
    """`write_bytes_atomic` for text (reports, pages, VTK files)."""
    return write_bytes_atomic(path, text.encode(encoding), then)


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
