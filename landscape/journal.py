"""The line-per-point journal beside a surface file: what a killed run had finished.

A surface writer appends one JSON line per finished point (``{"p": index, "v": {name: value}}``)
and folds the journal into the h5 file every few seconds. The first line is a header carrying the
run's key (a hash of every setting that changes values, and of the grid), which the h5 file also
stores: a journal is folded in only when its key is the key of the h5 file beside it. One whose
key differs, that has no header, or whose h5 file is gone belongs to another run and is set aside
(renamed, one warning), never mixed in. Lines that do not parse, name a point outside the grid,
carry names the run does not produce or values that are not numbers are dropped with one warning
that counts them (a line torn by a kill is the common case); their points are computed again.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Mapping

from .filewrite import write_all, write_error

HEADER = "landscape-surface-journal"
RESUME = "rerun the same command to resume (finished points are kept)"


def journal_path(surface_path: str | os.PathLike) -> Path:
    p = Path(surface_path)
    return p.with_name(p.name + ".journal")


def warn(message: str) -> None:
    """One line on stderr: a repaired problem the user should know about, not an error."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass
class JournalContent:
    """What a journal holds: whether it belongs to the run, its points, and how many lines were dropped."""

    exists: bool
    belongs: bool
    points: dict[int, dict[str, float]] = field(default_factory=dict)
    dropped: int = 0
    lines: int = 0  # point lines (every line but a header)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_journal(path: str | os.PathLike, key: str | None, size: int,
                 names: AbstractSet[str] | None = None) -> JournalContent:
    """Parse a journal for the run whose key is ``key`` (None: no run can own it).

    ``names`` is the set of quantities every line must carry exactly; None takes the first valid
    line's set as the rule for the others. Later lines for a point replace earlier ones.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return JournalContent(exists=False, belongs=True)
    except OSError as e:
        from .errors import LandscapeError

        raise LandscapeError(f"cannot read {path} ({e.strerror}); move it away to recompute its points") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return JournalContent(exists=True, belongs=True)
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    has_header = isinstance(header, dict) and header.get("journal") == HEADER
    if key is None or not has_header or header.get("key") != key:
        return JournalContent(exists=True, belongs=False, lines=len(lines) - has_header)
    out = JournalContent(exists=True, belongs=True, lines=len(lines) - 1)
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            rec = None
        p = rec.get("p") if isinstance(rec, dict) else None
        v = rec.get("v") if isinstance(rec, dict) else None
        if not (isinstance(p, int) and not isinstance(p, bool) and 0 <= p < size and isinstance(v, dict)
                and v and all(isinstance(k, str) and _number(x) for k, x in v.items())):
            out.dropped += 1
            continue
        if names is None:
            names = frozenset(v)
        if set(v) != set(names):
            out.dropped += 1
            continue
        out.points[p] = {k: float(x) for k, x in v.items()}
    return out


def set_aside(path: str | os.PathLike, surface_path: str | os.PathLike, content: JournalContent) -> Path | None:
    """Rename a journal that belongs to another run out of the way (``.stale``, ``.stale2``...).

    One holding no points (a header alone: killed before the first point) is simply removed.
    """
    path = Path(path)
    if not content.lines:
        try:
            path.unlink()
        except OSError as e:
            raise write_error(path, e) from None
        return None
    for n in range(1, 1000):
        target = path.with_name(path.name + (".stale" if n == 1 else f".stale{n}"))
        if not target.exists():
            break
    try:
        os.replace(path, target)
    except OSError as e:
        raise write_error(target, e) from None
    why = "its surface file is gone" if not Path(surface_path).exists() else "it was written by another run"
    warn(f"{path} does not belong to {surface_path} ({why}); moved it to {target.name}, its points are not used")
    return target


def warn_dropped(path: str | os.PathLike, content: JournalContent, consequence: str = "those points are computed "
                 "again") -> None:
    if content.dropped:
        warn(f"{path}: dropped {content.dropped} damaged line(s) (not JSON, a point outside the grid, or names "
             f"or values this surface does not have, e.g. a line torn by a kill); {consequence}")


class JournalWriter:
    """Append-only journal of one run: header line first, one line per finished point.

    Every line is written with ``os.write`` and cut back on failure, so a full disk leaves the
    journal ending with the last whole line; the error is one `LandscapeError`.
    """

    def __init__(self, path: str | os.PathLike, key: str):
        self.path = Path(path)
        self.key = key
        self._header = (json.dumps({"journal": HEADER, "key": key}) + "\n").encode()
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as e:
            raise write_error(self.path, e, RESUME) from None
        if os.fstat(self._fd).st_size == 0:
            self._append(self._header)

    def _append(self, data: bytes) -> None:
        size = os.fstat(self._fd).st_size
        try:
            write_all(self._fd, data)
        except OSError as e:
            try:  # drop the partial line; truncating frees space, so this works on a full disk
                os.ftruncate(self._fd, size)
            except OSError:
                pass  # the torn line is dropped on the next read instead
            raise write_error(self.path, e, RESUME) from None

    def append(self, p: int, values: Mapping[str, float]) -> None:
        # NaN and inf (a diverged point) go in as Python's json writes and reads them
        line = json.dumps({"p": int(p), "v": {k: float(v) for k, v in values.items()}})
        self._append((line + "\n").encode())

    def reset(self) -> None:
        """Empty the journal after its points reached the h5 file; the header stays."""
        try:
            os.ftruncate(self._fd, 0)
        except OSError as e:
            raise write_error(self.path, e, RESUME) from None
        self._append(self._header)

    def close(self, remove_if_empty: bool = True) -> None:
        if self._fd is None:
            return
        empty = os.fstat(self._fd).st_size <= len(self._header)
        os.close(self._fd)
        self._fd = None
        if remove_if_empty and empty:
            try:
                os.unlink(self.path)
            except OSError:
                pass
