"""The surface journal: owned by one run (its key), damaged lines dropped and counted, whole lines only."""
import errno
import json
import os

import pytest

from landscape.errors import LandscapeError
from landscape.journal import HEADER, JournalWriter, read_journal, set_aside

NAMES = frozenset({"train_loss", "train_acc"})


def _write(path, *lines, key="k1"):
    head = [json.dumps({"journal": HEADER, "key": key})] if key else []
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in [*head, *lines]) + b"\n")


def _line(p, **v):
    return json.dumps({"p": p, "v": v or {"train_loss": 1.5, "train_acc": 0.25}})


def test_points_of_own_run_are_read_and_later_lines_win(tmp_path):
    j = tmp_path / "s.h5.journal"
    _write(j, _line(0), _line(3, train_loss=2.0, train_acc=0.5), _line(0, train_loss=9.0, train_acc=1.0))
    c = read_journal(j, "k1", 6, NAMES)
    assert c.belongs and c.dropped == 0 and c.lines == 3
    assert c.points == {0: {"train_loss": 9.0, "train_acc": 1.0}, 3: {"train_loss": 2.0, "train_acc": 0.5}}


@pytest.mark.parametrize("key, header_key", [("k2", "k1"), (None, "k1"), ("k1", None)])
def test_journal_of_another_run_or_without_header_does_not_belong(tmp_path, key, header_key):
    j = tmp_path / "s.h5.journal"
    _write(j, _line(0), key=header_key)
    c = read_journal(j, key, 6, NAMES)
    assert not c.belongs and not c.points and c.lines == 1


def test_damaged_lines_are_dropped_and_counted(tmp_path):
    j = tmp_path / "s.h5.journal"
    bad = [b"\xff\xfe\x00binary", "[1, 2]", json.dumps({"v": {"train_loss": 1.0, "train_acc": 0.0}}),
           _line(6), _line(-1), json.dumps({"p": True, "v": {"train_loss": 1.0, "train_acc": 0.0}}),
           json.dumps({"p": 2, "v": {"train_loss": "1.0", "train_acc": 0.0}}),
           _line(2, train_loss=1.0, train_acc=0.0, bogus=3.0),  # a name the run does not produce
           json.dumps({"p": 2, "v": {}}), '{"p": 4, "v": {"train_lo']  # torn last line
    _write(j, _line(1), *bad)
    c = read_journal(j, "k1", 6, NAMES)
    assert c.dropped == len(bad) and list(c.points) == [1]


def test_without_names_the_first_line_sets_the_rule(tmp_path):
    j = tmp_path / "s.h5.journal"
    _write(j, _line(0, a=1.0), _line(1, a=2.0, b=3.0), _line(2, a=float("nan")))
    c = read_journal(j, "k1", 3, None)
    assert c.dropped == 1 and set(c.points) == {0, 2}


def test_set_aside_renames_with_a_warning_and_removes_a_bare_header(tmp_path, capsys):
    j = tmp_path / "s.h5.journal"
    _write(j, _line(0))
    moved = set_aside(j, tmp_path / "s.h5", read_journal(j, "other", 6, NAMES))
    assert moved.name == "s.h5.journal.stale" and not j.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "surface file is gone" in err[0] and "stale" in err[0]
    _write(j)  # killed between creating the journal and the first point: nothing to keep
    assert set_aside(j, tmp_path / "s.h5", read_journal(j, "other", 6, NAMES)) is None and not j.exists()
    assert capsys.readouterr().err == ""


def test_writer_keeps_whole_lines_when_the_disk_fills(tmp_path, monkeypatch):
    j = tmp_path / "s.h5.journal"
    w = JournalWriter(j, "k1")
    w.append(0, {"train_loss": 1.0, "train_acc": 0.5})
    real = os.write

    def half_then_full(fd, data):  # the disk fills in the middle of the next line
        if not getattr(half_then_full, "done", False):
            half_then_full.done = True
            return real(fd, bytes(data)[:7])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(LandscapeError, match=r"no space left on device \(errno 28\).*finished points are kept"):
        w.append(1, {"train_loss": 2.0, "train_acc": 0.5})
    monkeypatch.undo()
    w.close()
    c = read_journal(j, "k1", 6, NAMES)
    assert c.dropped == 0 and list(c.points) == [0]  # the partial line was cut back
    w = JournalWriter(j, "k1")  # reopened: appends after the last whole line, header kept
    w.append(2, {"train_loss": 3.0, "train_acc": 0.5})
    w.reset()
    w.close()
    assert not j.exists()  # only the header left: removed
