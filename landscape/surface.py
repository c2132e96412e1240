"""Loss surfaces over 1D and 2D grids, stored as h5 files that resume and never mix runs.

File layout (GUIDE.md section 4): ``xcoordinates``, ``ycoordinates``, one array per quantity
(``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``, ...) with shape ``(len(y), len(x))``
and ``value[j, i]`` at ``(x[i], y[j])`` (or ``(len(x),)`` in 1D), a ``done`` mask, and attributes
that make the run reproducible. Points not computed yet are NaN.

Accuracy (every ``*_acc`` array) is a fraction in a `Surface`, as `evaluate` returns it, and percent
in the file, with ``acc_unit = "percent"``: the unit the loss-landscape plotters draw on their 0-100
axis, so its ``plot_1D.py``/``plot_2D.py`` read these files unchanged. `load_surface` gives
fractions back for every file: this project's (``acc_unit``; fractions before it was recorded) and
the older tool's own (percent, recognised by the missing ``format``).

Finished points are appended to a line-per-point journal (``SURF.h5.journal``, `landscape.journal`)
as they arrive and folded into the h5 file by an atomic rewrite every few seconds, so a job killed
at any moment loses only the points in flight and rerunning the same command computes only what is
missing. The journal carries the run's key (every value-changing setting and the grid), so it is
never folded into another run's file; every check against an existing file happens before any
write; ``SURF.h5.lock`` keeps a second writer out (`landscape.lockfile`); a failed write is one
line and leaves no half-written file (`landscape.filewrite`).
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import __version__
from .bnstats import DEFAULT_SAMPLES as DEFAULT_BN_SAMPLES
from .bnstats import StatsRecompute, negative_variance_warning, resolve_bn_stats, without_stats
from .data import DataSpec
from .directions import directions_fingerprint
from .errors import LandscapeError
from .evaluation import Evaluator
from .filewrite import save_h5_atomic
from .journal import JournalWriter, RESUME, journal_path, read_journal, set_aside, warn, warn_dropped
from .losses import LossSpec, loss_name
from .params import WeightShifter

FORMAT = "landscape-surface"
PointFn = Callable[[nn.Module], Mapping[str, float]]


@dataclass
class Surface:
    """A computed (or partly computed) surface: coordinates, named arrays, done mask, attributes.

    Accuracy arrays (``*_acc``) hold fractions, whatever unit the file they came from uses.
    """

    x: np.ndarray
    y: np.ndarray | None
    arrays: dict[str, np.ndarray]
    done: np.ndarray
    attrs: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def ndim(self) -> int:
        return 1 if self.y is None else 2

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.y), len(self.x))

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise KeyError(f"surface has no {name!r}; it has {self.names}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def coords(self, p: int) -> tuple[float, ...]:
        """Grid coordinates of flat point index ``p`` (C order over the array shape)."""
        if self.y is None:
            return (float(self.x[p]),)
        j, i = divmod(p, len(self.x))
        return float(self.x[i]), float(self.y[j])


def _attr_value(value: Any) -> Any:
    """h5 attributes hold strings and numbers; everything else goes in as JSON."""
    if value is None:
        return "none"
    if isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return value
    return json.dumps(value, default=str)


def _read_attrs(h5attrs) -> dict:
    out = {}
    for k, v in h5attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif hasattr(v, "item") and np.ndim(v) == 0:
            v = v.item()
        out[k] = v
    return out


ACC_UNIT = "percent"  # the unit of *_acc arrays in surface files


def is_accuracy(name: str) -> bool:
    return name.endswith("_acc")


def _canonical_fraction(value: float) -> float:
    """The fraction a file's percent gives back (within an ulp of ``value``): resumed equals uninterrupted."""
    return value * 100.0 / 100.0


def _acc_divisor(attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: Path) -> float:
    """What a file's accuracy arrays are divided by to give fractions (see the module docstring)."""
    unit = attrs.get("acc_unit")
    if unit is not None:
        if unit not in ("percent", "fraction"):
            raise LandscapeError(f"{path} has acc_unit={unit!r}; expected 'percent' or 'fraction'")
        return 100.0 if unit == "percent" else 1.0
    if attrs.get("format") == FORMAT:
        return 1.0  # written before acc_unit was recorded: fractions
    # another program's file (the loss-landscape code writes percent); fractions only if no value exceeds 1
    values = np.concatenate([a[np.isfinite(a)].ravel() for n, a in arrays.items() if is_accuracy(n)] or [np.zeros(0)])
    return 100.0 if values.size and values.max() > 1.0 else 1.0


def _accuracy_to_fractions(attrs: Mapping[str, Any], arrays: dict[str, np.ndarray], path: Path) -> None:
    divisor = _acc_divisor(attrs, arrays, path)
    for name in arrays:
        if is_accuracy(name) and divisor != 1.0:
            arrays[name] = arrays[name] / divisor


class MemoryStore:
    """Finished points of a surface kept in memory: the bookkeeping without a file."""

    path: Path | None = None

    def __init__(self, x: np.ndarray, y: np.ndarray | None, fingerprint: Mapping[str, Any],
                 attrs: Mapping[str, Any]):
        self.x = np.asarray(x, dtype=np.float64)
        self.y = None if y is None else np.asarray(y, dtype=np.float64)
        self.shape = (len(self.x),) if self.y is None else (len(self.y), len(self.x))
        self.fingerprint = {k: _attr_value(v) for k, v in fingerprint.items()}
        self.attrs = {k: _attr_value(v) for k, v in attrs.items()}
        self.arrays: dict[str, np.ndarray] = {}
        self.extra_datasets: dict[str, np.ndarray] = {}
        self.done = np.zeros(self.shape, dtype=bool)

    def _put(self, p: int, values: Mapping[str, float]) -> None:
        index = np.unravel_index(p, self.shape)
        for name, value in values.items():
            if name not in self.arrays:
                self.arrays[name] = np.full(self.shape, np.nan)
            self.arrays[name][index] = _canonical_fraction(value) if is_accuracy(name) else value
        self.done[index] = True

    def pending(self) -> list[int]:
        return [int(p) for p in np.flatnonzero(~self.done.reshape(-1))]

    def record(self, p: int, values: Mapping[str, float]) -> None:
        self._put(p, values)

    def add_dataset(self, name: str, data: np.ndarray) -> None:
        self.extra_datasets[name] = np.asarray(data)

    def flush(self) -> None:
        pass

    def close(self, quiet: bool = False) -> None:
        pass

    def surface(self) -> Surface:
        attrs = {**self.attrs, **self.fingerprint, "format": FORMAT}
        return Surface(self.x, self.y, dict(self.arrays), self.done.copy(), attrs, self.path)


class SurfaceStore(MemoryStore):
    """The surface h5 file owned by one writer process, plus its journal and its lock.

    Opening checks everything against an existing file (settings, grid, damage) and reads the
    journal before writing anything, so a refused run leaves every file as it was; only then
    ``before_write`` runs (the caller's own files, e.g. the directions), a journal of another run
    is set aside and the journal's points are folded in. ``names`` are the quantities every point
    has (None: those of the file, or of the journal's first line).
    """

    def __init__(self, path: str | os.PathLike, x: np.ndarray, y: np.ndarray | None,
                 fingerprint: Mapping[str, Any], attrs: Mapping[str, Any], flush_seconds: float = 5.0, *,
                 names: Sequence[str] | None = None, before_write: Callable[[], Any] | None = None):
        from .lockfile import OutputLock

        super().__init__(x, y, fingerprint, attrs)
        self.path = Path(path)
        self.journal_path = journal_path(self.path)
        self.flush_seconds = flush_seconds
        self.key = _run_key(self.fingerprint, self.x, self.y)
        self._journal: JournalWriter | None = None
        self._lock = OutputLock(self.path).acquire()
        try:
            self._open(None if names is None else frozenset(names), before_write)
        except BaseException:
            if self._journal is not None:
                self._journal.close(remove_if_empty=False)
            self._lock.release()
            raise
        self._last_flush = time.monotonic()

    def _open(self, names: frozenset | None, before_write: Callable[[], Any] | None) -> None:
        exists = self.path.exists()
        file_key = self._load_existing() if exists else None  # refuses a file of other settings
        rule = names if names is not None else (frozenset(self.arrays) if self.arrays else None)
        journal = read_journal(self.journal_path, file_key, self.done.size, rule)
        # ---- every check passed: from here on files are written
        if before_write is not None:
            before_write()
        if not journal.belongs:
            set_aside(self.journal_path, self.path, journal)
        warn_dropped(self.journal_path, journal)
        for p, values in journal.points.items():
            if not self.done.flat[p]:  # a finished point is never overwritten by a journal line
                self._put(p, values)
        self._journal = JournalWriter(self.journal_path, self.key)
        if not exists or journal.points or file_key != self.key:
            self.flush()  # the file exists from the start, so a killed run can be read and resumed

    # -------------------------------------------------------------- resume
    def _load_existing(self) -> str | None:
        """Check the existing file against this run and take its points; returns its journal key."""
        fix = "use another --out, or delete the file to compute it again"
        x, y, arrays, done, others, old = read_surface_file(self.path, fix)
        if old.get("format") != FORMAT:
            raise LandscapeError(f"{self.path} is not a landscape surface file; pick another --out")
        if x.shape != self.x.shape or not np.array_equal(x, self.x) or (y is None) != (self.y is None) or \
                (self.y is not None and not np.array_equal(y, self.y)):
            raise LandscapeError(f"{self.path} holds a different grid than this command asks for; use another "
                                 "--out (or delete the file) to start a new surface")
        # A setting the file was made with and this run lacks (e.g. an extra measure) counts as "none".
        recorded = json.loads(old.get("fingerprint_keys", "[]"))
        wanted = {**self.fingerprint, **{k: "none" for k in recorded if k not in self.fingerprint}}
        for key, want in wanted.items():
            have = old.get(key, _BEFORE_RECORDED.get(key, "none"))
            if str(have) != str(want):
                flag = _RESUMED_AS_MADE.get(key)
                todo = f"leave out {flag} to resume with the file's value, " if flag else ""
                raise LandscapeError(f"{self.path} was computed with {key}={_short(have)}, this command asks for "
                                     f"{key}={_short(want)}; {todo}use another --out, or delete the file to "
                                     "recompute")
        self.done = done
        self.arrays.update(arrays)
        self.extra_datasets.update(others)
        key = old.get("journal_key")
        return key if isinstance(key, str) else None

    # -------------------------------------------------------------- writing
    def record(self, p: int, values: Mapping[str, float]) -> None:
        values = {k: float(v) for k, v in values.items()}
        self._journal.append(p, values)  # on disk first: a point is kept once its line is whole
        self._put(p, values)
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def _fill(self, f) -> None:
        f.create_dataset("xcoordinates", data=self.x)
        if self.y is not None:
            f.create_dataset("ycoordinates", data=self.y)
        for name, arr in self.arrays.items():
            f.create_dataset(name, data=arr * 100.0 if is_accuracy(name) else arr)
        for name, arr in self.extra_datasets.items():
            f.create_dataset(name, data=arr)
        f.create_dataset("done", data=self.done)
        for k, v in {**self.attrs, **self.fingerprint}.items():
            f.attrs[k] = v
        f.attrs["format"] = FORMAT
        f.attrs["acc_unit"] = ACC_UNIT
        f.attrs["fingerprint_keys"] = json.dumps(sorted(self.fingerprint))
        f.attrs["other_datasets"] = json.dumps(sorted(self.extra_datasets))
        f.attrs["journal_key"] = self.key
        f.attrs["points_done"] = int(self.done.sum())

    def flush(self) -> None:
        """Rewrite the h5 atomically from memory, then empty the journal it now contains."""
        save_h5_atomic(self.path, self._fill, RESUME)
        if self._journal is not None:
            self._journal.reset()
        self._last_flush = time.monotonic()

    def close(self, quiet: bool = False) -> None:
        """Fold the journal into the h5 file and let go of the output. ``quiet``: after an error,
        a failing last flush is not raised (the journal still holds every point)."""
        try:
            self.flush()
        except LandscapeError:
            if not quiet:
                raise
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self._lock.release()


# Settings recorded only since a later version, as files written before then were computed.
_BEFORE_RECORDED = {"fold_bn": 0, "layout": "contiguous", "dtype": "float32", "device_type": "cpu",
                    "bias_dir": "random", "bn_stats": "interpolate"}
# Settings that an unspecified CLI option takes from the file being resumed.
_RESUMED_AS_MADE = {"batch_size": "--batch-size", "layout": "--layout", "fold_bn": "--fold-bn",
                    "precision": "--precision"}


def _run_key(fingerprint: Mapping[str, Any], x: np.ndarray, y: np.ndarray | None) -> str:
    """A hash of every setting that changes values and of the grid: the journal's owner."""
    import hashlib

    blob = json.dumps({"fingerprint": fingerprint, "x": x.tolist(), "y": None if y is None else y.tolist()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _short(value: Any, n: int = 60) -> str:
    s = str(value)
    return s if len(s) <= n else s[: n - 3] + "..."


_RESERVED = ("xcoordinates", "ycoordinates", "done")


def _coordinates(f, name: str, bad: Callable[[str], None]) -> np.ndarray:
    import h5py

    d = f[name]
    if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "iuf" or d.ndim != 1 or d.shape[0] < 1:
        bad(f"{name!r} is not a 1-D array of numbers (it is {getattr(d, 'dtype', 'a group')}, "
            f"shape {getattr(d, 'shape', None)})")
    values = d[()].astype(np.float64)
    if not np.isfinite(values).all():
        bad(f"{name!r} holds non-finite coordinates")
    return values


def read_surface_file(path: str | os.PathLike, fix: str) -> tuple[np.ndarray, np.ndarray | None, dict, np.ndarray,
                                                                  dict, dict]:
    """x, y, grid arrays (accuracy as fractions), done mask, other datasets and attributes of a file, checked.

    A damaged file (no ``done``, arrays of the wrong shape, strings, non-finite coordinates, not
    h5 at all) is one `LandscapeError` that ends with ``fix``. Files of the older loss-landscape
    tool (no ``format`` attribute) have no ``done``: their finite points count as done.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise LandscapeError(f"{path} is not a readable h5 file ({str(e).splitlines()[0] if str(e) else e!r}); "
                             f"{fix}") from None
    try:
        with f:
            return _parse_surface(f, path, fix)
    except LandscapeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise LandscapeError(f"{path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                             f"; {fix}") from None


def _parse_surface(f, path: Path, fix: str):
    import h5py

    def bad(what: str) -> None:
        raise LandscapeError(f"{path}: {what}; {fix}")

    attrs = _read_attrs(f.attrs)
    ours = attrs.get("format") == FORMAT
    if "xcoordinates" not in f:
        bad("no 'xcoordinates': not a surface file")
    x = _coordinates(f, "xcoordinates", bad)
    y = _coordinates(f, "ycoordinates", bad) if "ycoordinates" in f else None
    shape = (len(x),) if y is None else (len(y), len(x))
    try:
        allowed = set(json.loads(attrs.get("other_datasets", "[]")))
    except (TypeError, json.JSONDecodeError):
        allowed = set()
    arrays, others = {}, {}
    for name in f:
        if name in _RESERVED:
            continue
        d = f[name]
        if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "biuf":
            if ours:
                bad(f"{name!r} is not an array of numbers ({getattr(d, 'dtype', 'a group')})")
            continue
        if d.shape == shape:
            arrays[name] = d[()].astype(np.float64)
        elif not ours or name in allowed or (name.endswith("_subset") and d.ndim == 1 and d.dtype.kind in "iu"):
            others[name] = d[()]
        else:
            bad(f"{name!r} has shape {d.shape}, the grid is {shape}")
    if "done" in f:
        d = f["done"]
        if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "biu" or d.size != int(np.prod(shape)):
            bad(f"'done' should be {int(np.prod(shape))} flags, it is {getattr(d, 'dtype', 'a group')} of shape "
                f"{getattr(d, 'shape', None)}")
        done = d[()].astype(bool).reshape(shape)
    elif ours:
        bad("no 'done' mask (the file was not written completely by landscape surface, or was edited)")
    else:
        done = np.isfinite(next(iter(arrays.values()), np.zeros(shape)))
    _accuracy_to_fractions(attrs, arrays, path)
    return x, y, arrays, done, others, attrs


def load_surface(path: str | os.PathLike) -> Surface:
    """Read a surface file (including points still only in its journal); damage is one clear error."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"surface file {str(path)!r} does not exist")
    fix = "compute it again with landscape surface (delete it first)"
    x, y, arrays, done, _, attrs = read_surface_file(path, fix)
    attrs.pop("acc_unit", None)  # it names the file's unit; a Surface always holds fractions
    journal = journal_path(path)
    key = attrs.get("journal_key")
    content = read_journal(journal, key if isinstance(key, str) else None, done.size,
                           frozenset(arrays) if arrays else None)
    if not content.belongs and content.lines:
        warn(f"{journal} does not belong to {path} (written by another run); its points are not used")
    warn_dropped(journal, content, "those points are left out")
    for p, values in content.points.items():
        if done.flat[p]:
            continue
        index = np.unravel_index(p, done.shape)
        for name, value in values.items():
            arrays.setdefault(name, np.full(done.shape, np.nan))[index] = \
                _canonical_fraction(value) if is_accuracy(name) else value
        done[index] = True
    return Surface(x, y, arrays, done, attrs, path)


# ------------------------------------------------------------------ computing
def _as_splits(data: DataSpec | Mapping[str, DataSpec], test_data: DataSpec | None) -> dict[str, DataSpec]:
    if isinstance(data, Mapping) and not all(isinstance(v, torch.Tensor) for v in data.values()):
        splits = dict(data)  # {split: data}; a dict of tensors is one dataset of dict batches
    else:
        splits = {"train": data}
    if test_data is not None:
        splits["test"] = test_data
    return splits


def subset_hash(t: torch.Tensor | None) -> str:
    """Short fingerprint of a sample-index subset (``"all"`` for none), as files record it."""
    import hashlib

    if t is None:
        return "all"
    return hashlib.sha256(t.cpu().numpy().tobytes()).hexdigest()[:16]


def compute_surface(model: nn.Module, directions: Sequence[Mapping[str, torch.Tensor]],
                    data: DataSpec | Mapping[str, DataSpec], x: Sequence[float], y: Sequence[float] | None = None,
                    out: str | os.PathLike | None = None, *, test_data: DataSpec | None = None,
                    loss: LossSpec = "crossentropy", batch_size: int | None = None,
                    device: str | torch.device | None = None, kind: str = "weights", samples: int | None = None,
                    subset_seed: int = 0, rtol: float | None = None, min_samples: int = 512,
                    precision: str = "fp32", layout: str = "contiguous", extra: Sequence[PointFn] = (),
                    fold_bn: bool | str = "auto", bn_stats: str = "auto", bn_data: DataSpec | None = None,
                    bn_samples: int | None = DEFAULT_BN_SAMPLES, bn_seed: int = 0, progress: bool = True,
                    attrs: Mapping[str, Any] | None = None, comm: Any = "auto",
                    flush_seconds: float = 5.0, before_write: Callable[[], Any] | None = None,
                    data_on: str = "auto", target_key: str | None = None) -> Surface:
    """Evaluate loss and accuracy at ``w0 + x_i dx (+ y_j dy)`` for every grid point.

    ``data`` is one dataset (called ``train``) or a mapping ``{split: data}``; ``test_data`` adds
    a ``test`` split. ``samples`` evaluates every point on the same fixed random subset; ``rtol``
    instead stops each point once the loss's standard error is below ``rtol`` times the loss
    (recording ``*_loss_se`` and ``*_samples``). ``extra`` callables ``f(model) -> {name: value}``
    add quantities per point (e.g. Hessian extremes); one with a ``fingerprint`` dict has those
    settings stored and checked on resume like the others. With ``out`` the surface is written as it
    goes and resumed if the file exists. Under ``mpirun`` (``comm="auto"``) the grid is shared
    among the ranks and rank 0 writes; every rank gets the finished `Surface` back.
    ``layout="channels_last"`` runs 4D models in that memory layout (often faster on CPUs) and
    hands the model back in its original layout. ``fold_bn`` evaluates a twin of the model with
    each eval-mode BatchNorm folded into the convolution before it (`landscape.fusion`), refolded
    after every move of the weights: ``"auto"`` when the model allows it, ``True`` or an error
    saying why not, ``False`` never; values differ from unfolded ones by float rounding. The
    number of folded pairs is stored (``fold_bn``) and must match on resume. ``extra`` callables
    always get the model itself. ``before_write`` runs on the writing rank once an existing
    ``out`` file has been checked against this run, before anything is written (the caller saves
    its own files there, so a refused run leaves every file as it was). ``out`` is locked while
    the run writes it: a second writer is refused. Batch size, layout, dtype, device type and every
    setting above are stored and must match on resume (they change the values' rounding). ``data_on``
    keeps the data on the device or streams it (`landscape.risk`; the values are the same);
    ``target_key`` names the target of dict batches (`landscape.batches`).

    ``bn_stats`` says what BatchNorm running statistics are at each point (`landscape.bnstats`):
    ``recompute`` re-estimates them from ``bn_samples`` samples of ``bn_data`` (default: the
    ``train`` split, all of it) drawn by ``bn_seed``; ``interpolate`` moves them with the
    directions (warning where a variance goes below zero); ``keep`` leaves the model's own.
    ``auto`` recomputes where a direction moves them. Recomputed statistics feed the BatchNorm
    fold, and the mode is part of the file's fingerprint.
    """
    from .batches import example_inputs
    from .evaluation import AdaptiveEvaluator, channels_last_model, resolve_device
    from .parallel import get_comm, on_root, rank_of, run_points

    comm = get_comm() if comm == "auto" else comm
    writer = rank_of(comm) == 0
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = None if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
    n_dirs = 1 if y is None else 2
    if len(directions) < n_dirs:
        raise LandscapeError(f"a {'2D' if n_dirs == 2 else '1D'} surface needs {n_dirs} direction(s), got {len(directions)}")
    directions = list(directions)[:n_dirs]
    if comm is not None:  # identical directions on every rank, whatever each rank was given
        directions = comm.bcast(directions if writer else None, root=0)

    raw_splits = splits = _as_splits(data, test_data)
    bn_mode = resolve_bn_stats(bn_stats, model, directions)
    recompute = None
    if bn_mode == "recompute":
        if bn_data is None and "train" not in raw_splits:
            raise LandscapeError("bn_stats='recompute' needs training data to estimate BatchNorm statistics: "
                                 "pass a 'train' split or bn_data")
        recompute = StatsRecompute(model, raw_splits["train"] if bn_data is None else bn_data, samples=bn_samples,
                                   seed=bn_seed, device=resolve_device(device, model))
    example = example_inputs(next(iter(splits.values())), target_key=target_key)
    example = example[0].to(resolve_device(None, model)) if isinstance(example, tuple) and len(example) == 1 else None
    twin = _folded_twin(model, fold_bn, example)  # built in the model's layout; sync() follows a layout change
    evaluated = model if twin is None else twin
    if layout not in ("contiguous", "channels_last"):
        raise LandscapeError(f"unknown layout {layout!r}; use 'contiguous' or 'channels_last'")
    cl = layout == "channels_last"
    evaluators, subsets = {}, {}
    options = dict(samples=samples, data_on=data_on, target_key=target_key)
    for split, d in splits.items():
        if rtol:
            evaluators[split] = AdaptiveEvaluator(evaluated, d, loss, batch_size, device, precision, rtol,
                                                  min_samples, subset_seed, channels_last=cl, **options)
        else:
            evaluators[split] = Evaluator(evaluated, d, loss, batch_size, device, precision, channels_last=cl,
                                          seed=subset_seed, **options)
        subsets[split] = evaluators[split].risk.subset

    # Checked in this order on resume, so the first mismatch named is the most telling one.
    fingerprint = {
        "dataset": (attrs or {}).get("dataset", "custom"),
        "checkpoint_sha256": (attrs or {}).get("checkpoint_sha256", "none"),
        "directions": directions_fingerprint(directions), "kind": kind, "splits": sorted(splits),
        "samples": samples if samples else "all", "subsets": {s: subset_hash(i) for s, i in subsets.items()},
        "n_samples": {s: ev.n for s, ev in evaluators.items()}, "loss": loss_name(loss),
        "precision": precision, "rtol": rtol if rtol else "none", "fold_bn": 0 if twin is None else twin.n_folded,
        "batch_size": evaluators[next(iter(evaluators))].batch_size, "layout": layout, "dtype": _dtype(model),
        "device_type": evaluators[next(iter(evaluators))].device.type,
        **{k: attrs[k] for k in ("bias_dir",) if k in (attrs or {})},  # how random directions move biases
        "bn_stats": bn_mode, **(recompute.fingerprint if recompute is not None else {}),
    }
    for f in extra:  # an extra measure's own settings (e.g. Lanczos tolerance) must match on resume too
        fingerprint.update(getattr(f, "fingerprint", None) or {})
    all_attrs = {"package_version": __version__,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "ranks": 1 if comm is None else comm.Get_size(),
                 **({"min_samples": min_samples} if rtol else {}), **dict(attrs or {})}
    for key in fingerprint:
        all_attrs.pop(key, None)

    # The quantities of every point: journal lines naming others are dropped. None while an extra
    # does not declare its ``names``.
    names: list[str] | None = [f"{split}_{q}" for split in evaluators
                               for q in ("loss", "acc", *(("loss_se", "samples") if rtol else ()))]
    for f in extra:
        names = None if names is None or getattr(f, "names", None) is None else [*names, *f.names]

    store: MemoryStore | None = None

    def open_store() -> list[int]:  # on the writer only; a refusal reaches every rank
        nonlocal store
        if out is None:
            store = MemoryStore(x, y, fingerprint, all_attrs)
        else:
            store = SurfaceStore(out, x, y, fingerprint, all_attrs, flush_seconds, names=names,
                                 before_write=before_write)
        for split, idx in subsets.items():
            if idx is not None:
                store.add_dataset(f"{split}_subset", idx.numpy())
        return store.pending()

    todo = on_root(comm, open_store)

    with channels_last_model(model, layout == "channels_last"):
        if recompute is not None:
            recompute()
        if twin is not None:
            twin.sync()
        if rtol:
            for ev in evaluators.values():  # per-sample losses at the centre: the control variate
                ev.set_control()
        shifter = WeightShifter(model, directions if bn_mode == "interpolate" else without_stats(directions), kind)
        grid = Surface(x, y, {}, np.zeros(0, bool))
        warned = []

        def point(p: int) -> dict[str, float]:
            shifter.set(grid.coords(p))
            if recompute is not None:
                recompute()
            elif shifter.n_negative and not warned:
                warned.append(p)
                warnings.warn(negative_variance_warning(grid.coords(p), shifter.n_negative), stacklevel=2)
            if twin is not None:
                twin.sync()
            values: dict[str, float] = {}
            for split, ev in evaluators.items():
                if rtol:
                    (values[f"{split}_loss"], values[f"{split}_acc"], values[f"{split}_loss_se"],
                     values[f"{split}_samples"]) = ev()
                else:
                    values[f"{split}_loss"], values[f"{split}_acc"] = ev()
            for f in extra:
                values.update({k: float(v) for k, v in f(model).items()})
            return values

        bar = _progress(len(todo), progress and writer, desc=f"{n_dirs}D surface")
        failed = True
        try:
            if writer and not todo and out is not None:  # said even without progress bars
                print(f"{out}: all {store.done.size} points already computed; nothing to do")
            run_points(point, todo, store.record if writer else None, comm, on_point=lambda: bar.update(1))
            failed = False
        finally:
            bar.close()
            shifter.restore()
            if recompute is not None:
                recompute.restore()
            if store is not None:
                store.close(quiet=failed)  # after an error the journal keeps the points a last flush could not
    result = store.surface() if writer else None
    return comm.bcast(result, root=0) if comm is not None else result


def _dtype(model: nn.Module) -> str:
    p = next(iter(model.parameters()), None)
    return "none" if p is None else str(p.dtype).replace("torch.", "")


def _folded_twin(model: nn.Module, fold_bn: bool | str, example: torch.Tensor):
    """The model with BatchNorm folded (`landscape.fusion`), or None to evaluate the model itself."""
    from .evaluation import eval_mode
    from .fusion import fold_batchnorm

    if fold_bn not in (True, False, "auto", "on", "off"):
        raise LandscapeError(f"fold_bn must be True, False or 'auto', got {fold_bn!r}")
    if fold_bn in (False, "off"):
        return None
    required = fold_bn in (True, "on")
    try:
        with eval_mode(model):  # evaluated in eval mode, so that is the mode to fold in
            return fold_batchnorm(model, example, required=required)
    except LandscapeError as e:
        raise LandscapeError(f"fold_bn is on but {e}; use fold_bn 'auto' (--fold-bn auto) to fall back to the "
                             "model as it is") from None


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled or total == 0, desc=desc, unit="pt", dynamic_ncols=True)
