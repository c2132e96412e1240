"""Datasets by name, and one way to turn any user data into tensors.

Built-in data never touches the network: ``digits`` ships with scikit-learn and ``mnist1d`` is
generated locally (and cached). CIFAR and (Fashion-)MNIST are read from files the user already
has under ``--data-root``. They come back as a `LabeledData` (a `TensorDataset` that knows its
name, input shape and class count) normalized with fixed per-dataset statistics, never augmented.
A user factory's Dataset or DataLoader (``pkg.module:factory``) may be larger than memory: the
measuring commands take it as a `UserData`, described by its first samples and streamed, never
read whole.
"""
from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .errors import LandscapeError
from .filewrite import atomic_path

DataSpec = Union[Dataset, DataLoader, "tuple[torch.Tensor, torch.Tensor]"]
SPLITS = ("train", "test")


class MissingSplit(LandscapeError):
    """A user's data factory returned training data only and a test split was asked for."""


class LabeledData(TensorDataset):
    """Inputs and targets as two tensors, plus what a model needs to know about them."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, name: str = "custom",
                 num_classes: int | None = None, split: str = "train"):
        super().__init__(inputs, targets)
        self.name = name
        self.split = split
        self.inputs, self.targets = inputs, targets
        self.input_shape = tuple(inputs.shape[1:])
        if num_classes is None and targets.dtype == torch.int64 and len(targets):
            num_classes = int(targets.max()) + 1
        self.num_classes = num_classes

    def __repr__(self) -> str:
        return (f"LabeledData({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes})")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    input_shape: tuple
    num_classes: int
    needs_root: bool
    loader: Callable[[str, Path | None], tuple[np.ndarray, np.ndarray]]
    mean: Sequence[float]  # empty for token data: ids are not normalized
    std: Sequence[float]
    expected_files: str = ""


def cache_dir() -> Path:
    """Where generated data is cached: $LANDSCAPE_CACHE or ~/.cache/landscape."""
    return Path(os.environ.get("LANDSCAPE_CACHE", Path.home() / ".cache" / "landscape"))


# ---------------------------------------------------------------- built-in, no download
def _load_digits(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=360, random_state=0, stratify=y)
    return (xtr, ytr) if split == "train" else (xte, yte)


def _load_mnist1d(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = cache_dir() / "mnist1d-v1.npz"
    if not path.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        d = make_dataset(get_dataset_args())  # local generation, seed fixed by the defaults
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file: np.savez would append .npz to a name
            np.savez(f, x=d["x"], y=d["y"], x_test=d["x_test"], y_test=d["y_test"])
    d = np.load(path)
    x, y = (d["x"], d["y"]) if split == "train" else (d["x_test"], d["y_test"])
    return x.astype(np.float32).reshape(-1, 1, x.shape[-1]), y.astype(np.int64)


# ---------------------------------------------------------------- text every machine has
PYSRC_CONTEXT = 64  # tokens per sequence
PYSRC_VOCAB = 128  # bytes 0-127 (ASCII); any byte >= 128 becomes 127 (DEL, which source files never hold)
PYSRC_SIZES = {"train": 8192, "test": 1024}  # sequences per split


def pysrc_files() -> list[Path]:
    """The Python standard library's own top-level source files, sorted: text every Python install has."""
    import sysconfig

    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"), key=lambda p: p.name)


def pysrc_fingerprint(files: Sequence[Path]) -> str:
    """sha256 over the sorted (name, content hash) list: the same value means the same text and split."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _load_pysrc(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Next-byte prediction on the standard library's source, split by file (about 1 file in 10 is test).

    Each file is cut into non-overlapping windows of ``PYSRC_CONTEXT + 1`` bytes (inputs are the
    first 64, targets the last 64, shifted by one); a seeded draw keeps `PYSRC_SIZES` windows
    per split. Cached under `cache_dir` by Python version and fingerprint of the file list.
    """
    import hashlib
    import sys

    files = pysrc_files()
    if not files:
        raise LandscapeError("no Python standard-library sources found for the pysrc dataset "
                             "(this Python ships without its .py files)")
    fingerprint = pysrc_fingerprint(files)
    path = cache_dir() / f"pysrc-py{sys.version_info[0]}{sys.version_info[1]}-{fingerprint[:16]}.npz"
    if not path.exists():
        window = PYSRC_CONTEXT + 1
        parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        for f in files:
            which = "test" if hashlib.sha256(f.name.encode()).digest()[0] < 26 else "train"  # 26/256 ~ 10%
            data = np.minimum(np.frombuffer(f.read_bytes(), dtype=np.uint8), PYSRC_VOCAB - 1)
            n = len(data) // window
            if n:
                parts[which].append(data[:n * window].reshape(n, window))
        arrays = {}
        for name, size in PYSRC_SIZES.items():
            windows = np.concatenate(parts[name])
            pick = np.sort(np.random.default_rng(0).permutation(len(windows))[:size])
            arrays[name] = windows[pick]
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, fingerprint=np.array(fingerprint), files=np.array([f.name for f in files]), **arrays)
    windows = np.load(path)[split].astype(np.int64)
    return windows[:, :-1], windows[:, 1:]


# ---------------------------------------------------------------- from --data-root
class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles; allow only what numpy arrays need, run nothing else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise LandscapeError(f"refusing to unpickle {module}.{name}: a CIFAR batch holds only arrays")


def _read_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _ArrayOnlyUnpickler(f, encoding="bytes").load()


def _find_dir(root: Path, candidates: Sequence[str], marker: str) -> Path | None:
    for sub in candidates:
        d = root / sub
        if (d / marker).exists() or (d / (marker + ".gz")).exists():
            return d
    return None


def _load_cifar(split: str, root: Path, *, hundred: bool) -> tuple[np.ndarray, np.ndarray]:
    sub, marker = ("cifar-100-python", "train") if hundred else ("cifar-10-batches-py", "data_batch_1")
    d = _find_dir(root, [sub, "."], marker)
    if d is None:
        raise FileNotFoundError
    if hundred:
        files, key = [("train" if split == "train" else "test")], b"fine_labels"
    else:
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        key = b"labels"
    xs, ys = [], []
    for name in files:
        batch = _read_pickle(d / name)
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[key], dtype=np.int64))
    return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_idx(split: str, root: Path, *, subdirs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    d = _find_dir(root, subdirs, f"{prefix}-images-idx3-ubyte")
    if d is None:
        raise FileNotFoundError

    def pick(stem: str) -> Path:
        p = d / stem
        return p if p.exists() else d / (stem + ".gz")

    x = _read_idx(pick(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = _read_idx(pick(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return x.reshape(-1, 1, 28, 28), y


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", (1, 8, 8), 10, False, _load_digits, [0.3055], [0.3831]),
    "mnist1d": DatasetInfo("mnist1d", (1, 40), 10, False, _load_mnist1d, [-0.0148], [0.9948]),
    "pysrc": DatasetInfo("pysrc", (PYSRC_CONTEXT,), PYSRC_VOCAB, False, _load_pysrc, [], []),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, True, lambda s, r: _load_cifar(s, r, hundred=False),
        [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616],
        "cifar-10-batches-py/{data_batch_1..5,test_batch} (the 'CIFAR-10 python version' archive, extracted)"),
    "cifar100": DatasetInfo(
        "cifar100", (3, 32, 32), 100, True, lambda s, r: _load_cifar(s, r, hundred=True),
        [0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762],
        "cifar-100-python/{train,test} (the 'CIFAR-100 python version' archive, extracted)"),
    "mnist": DatasetInfo(
        "mnist", (1, 28, 28), 10, True, lambda s, r: _load_idx(s, r, subdirs=[".", "MNIST/raw", "mnist"]),
        [0.1307], [0.3081],
        "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (directly, or under MNIST/raw/)"),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", (1, 28, 28), 10, True,
        lambda s, r: _load_idx(s, r, subdirs=[".", "FashionMNIST/raw", "fashion-mnist"]),
        [0.2860], [0.3530],
        "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (directly, or under FashionMNIST/raw/)"),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise LandscapeError(f"unknown dataset {name!r}; built in: {', '.join(DATASETS)} "
                             "(or pass your own data through the Python API)") from None


def get_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None, *,
                lazy: bool = False) -> LabeledData | UserData:
    """Load a dataset split, normalized with the dataset's fixed mean and std, never augmented.

    ``name`` may also be an import path ``pkg.module:factory`` (see `user_dataset`; ``lazy``
    keeps a factory's Dataset or DataLoader unread, as a `UserData`).
    """
    from .imports import is_import_path

    if is_import_path(name):
        return user_dataset(name, split, lazy=lazy)
    info = dataset_info(name)
    if split not in SPLITS:
        raise LandscapeError(f"unknown split {split!r}; use 'train' or 'test'")
    root_path = None
    if info.needs_root:
        if root is None:
            raise LandscapeError(f"dataset {name!r} is read from local files: pass --data-root DIR "
                                 f"(root=...) where DIR holds {info.expected_files}")
        root_path = Path(root).expanduser()
        if not root_path.is_dir():
            raise LandscapeError(f"data root {str(root_path)!r} is not a directory; it should hold "
                                 f"{info.expected_files}")
    try:
        x, y = info.loader(split, root_path)
    except FileNotFoundError:
        raise LandscapeError(f"{name} files not found under {str(root_path)!r}: expected "
                             f"{info.expected_files}; nothing is downloaded") from None
    if not len(info.mean):  # token ids: (N, T) inputs and next-token targets, as they are
        data = LabeledData(torch.from_numpy(x), torch.from_numpy(y), name=name, num_classes=info.num_classes,
                           split=split)
        if name == "pysrc":
            data.fingerprint = pysrc_fingerprint(pysrc_files())
        return data
    mean = np.asarray(info.mean, dtype=np.float32).reshape((-1,) + (1,) * (x.ndim - 2))
    std = np.asarray(info.std, dtype=np.float32).reshape((-1,) + (1,) * (x.ndim - 2))
    x = (x - mean) / std
    return LabeledData(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                       torch.from_numpy(y), name=name, num_classes=info.num_classes, split=split)


def user_dataset(path: str, split: str = "train", *, lazy: bool = False) -> LabeledData | UserData:
    """The ``split`` of the data a user factory ``pkg.module:factory`` returns.

    The factory is called with ``split=`` if it takes that argument, else with no arguments. It
    returns a `Dataset`, a `DataLoader`, an ``(inputs, targets)`` pair of tensors, or a mapping
    ``{"train": ..., "test": ...}`` of those. A single dataset is the train split; asking it for
    the test split is an error that says to return the mapping.

    Tensors (a pair or a `TensorDataset`) come back as a `LabeledData` (no copy). A Dataset or
    DataLoader comes back as a `UserData` with ``lazy=True`` (the measuring commands stream it);
    otherwise it is read into a `LabeledData` when it fits `batches.CPU_BUDGET` and refused when not.
    """
    from .batches import in_memory
    from .imports import accepted_kwargs, call_factory, resolve

    if split not in SPLITS:
        raise LandscapeError(f"unknown split {split!r}; use 'train' or 'test'")
    fn = resolve(path, "data")
    kwargs = accepted_kwargs(fn, {"split": split}) if callable(fn) else {}
    value = call_factory(fn, path, "data", kwargs)
    if isinstance(value, dict):
        if split not in value:
            raise LandscapeError(f"data {path!r} returned a mapping with keys {sorted(map(str, value))}; "
                                 f"it needs {split!r} (return {{'train': ..., 'test': ...}})")
        value = value[split]
    elif split == "test" and not kwargs:
        raise MissingSplit(f"data {path!r} returned one dataset, used as the train split; for a test split "
                             "return {'train': ..., 'test': ...} or take a split argument")
    if not isinstance(value, (Dataset, DataLoader, tuple, list)):
        raise LandscapeError(f"data {path!r} returned a {type(value).__name__}; return a Dataset, a DataLoader, "
                             "an (inputs, targets) pair of tensors or a {'train': ..., 'test': ...} mapping")
    if isinstance(value, LabeledData):
        return value
    num_classes = getattr(value, "num_classes", None) or getattr(getattr(value, "dataset", None), "num_classes", None)
    try:
        if in_memory(value) or not _has_length(value):  # tensors already, or a stream whose end only a pass finds
            x, y = as_tensors(value)
            return LabeledData(x, y, name=path, num_classes=num_classes, split=split)
        data = UserData(value, path, split, num_classes)
        return data if lazy else data.tensors()
    except LandscapeError as e:
        raise LandscapeError(f"data {path!r}: {e}") from None


def _has_length(value: Any) -> bool:
    from .batches import data_length

    try:
        data_length(value)
    except TypeError:
        return False
    return True


class UserData:
    """A user's `Dataset` or `DataLoader` as the CLI takes it: described by its first samples, never read whole.

    A factory may return far more data than memory holds (a loader over 50 GB of images); read into
    two tensors, as built-in data is, it would exhaust memory before the first line of output. This
    keeps the object (``source``, what measurements take: `landscape.risk` streams it) and what the
    CLI needs to know of it: ``len`` (`batches.data_length`), ``input_shape`` (of the first sample),
    ``num_classes`` (the object's own ``num_classes``, else 1 + the largest of its ``targets``
    column, else None) and a `fingerprint`. Commands that need every sample as tensors call
    `tensors`, which reads them only when they fit `batches.CPU_BUDGET`.
    """

    def __init__(self, source: Dataset | DataLoader, name: str, split: str = "train", num_classes: int | None = None):
        from .batches import data_length

        self.source, self.name, self.split = source, name, split
        self.length = data_length(source)
        if self.length == 0:
            raise LandscapeError("the data holds no samples")
        self.head = head_of(source, HEAD_SAMPLES)
        inputs, target = self.head
        self.input_shape = tuple(inputs[0].shape[1:]) if isinstance(inputs, tuple) and len(inputs) == 1 else None
        self.num_classes = num_classes if num_classes is not None else _classes_of(source, self.length)
        leaves = [*(inputs.values() if isinstance(inputs, dict) else inputs), target]
        self.sample_bytes = sum(t[:1].nbytes for t in leaves if isinstance(t, torch.Tensor))

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"UserData({self.name!r}, split={self.split!r}, n={self.length}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes}, {type(self.source).__name__})")

    @property
    def fingerprint(self) -> str:
        """sha256 of the factory path, split, length and the first `HEAD_SAMPLES` samples' bytes (20 hex digits).

        Hashing every sample would cost a pass over data that may be terabytes; this catches a
        changed factory, split, size or head, not an edit deep inside the data.
        """
        import hashlib

        inputs, target = self.head
        h = hashlib.sha256(f"{self.name}\0{self.split}\0{self.length}".encode())
        for t in [*(inputs.values() if isinstance(inputs, dict) else inputs), target]:
            h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:20]

    def tensors(self) -> LabeledData:
        """Every sample as a `LabeledData`, for commands that hold their data whole; refused when it would
        not fit `batches.CPU_BUDGET` (one line naming the commands that stream it instead)."""
        from .batches import CPU_BUDGET

        need = self.sample_bytes * self.length
        if need > CPU_BUDGET:
            raise LandscapeError(
                f"{self.length:,} samples are about {need / 2 ** 30:.1f} GiB as tensors, more than the "
                f"{CPU_BUDGET / 2 ** 30:g} GiB a command that holds its data in memory (train, sweep, track) reads; "
                "surface, plot, hessian, sharpness and report stream it (--data-on stream), "
                "or change --dataset to a smaller one")
        x, y = as_tensors(self.source)
        return LabeledData(x, y, name=self.name, num_classes=self.num_classes, split=self.split)


HEAD_SAMPLES = 8  # samples a user's data is described and fingerprinted by


def head_of(data: Any, samples: int) -> tuple[Any, torch.Tensor]:
    """The first ``samples`` samples as columns (`batches.head_columns`); a `DataLoader` over a map-style
    dataset is read by index in the dataset's own order (a shuffled loader's first batch changes every time)."""
    from torch.utils.data import IterableDataset

    from .batches import head_columns

    if isinstance(data, DataLoader) and not isinstance(data.dataset, IterableDataset):
        data = DataLoader(data.dataset, batch_size=samples, collate_fn=data.collate_fn)
    return head_columns(data, samples)


def _classes_of(data: Any, length: int) -> int | None:
    """1 + the largest target of the data's own ``targets`` column (torchvision's datasets have one), else None."""
    for obj in (data, getattr(data, "dataset", None)):
        t = getattr(obj, "targets", None)
        if t is not None and not isinstance(t, (str, bytes)):
            try:
                t = torch.as_tensor(t)
            except (TypeError, ValueError, RuntimeError):
                continue
            if t.dtype == torch.int64 and t.dim() == 1 and len(t) == length:
                return int(t.max()) + 1
    return None


def source_of(data: Any) -> Any:
    """What a measurement takes: a `UserData`'s own Dataset or DataLoader, anything else as it is."""
    return data.source if isinstance(data, UserData) else data


def train_test(name: str, root: str | os.PathLike | None = None) -> tuple[LabeledData, LabeledData | None]:
    """Both splits of ``name``; the test split is None when a user factory returns only training data."""
    train = get_dataset(name, "train", root)
    try:
        return train, get_dataset(name, "test", root)
    except MissingSplit:
        return train, None


# ---------------------------------------------------------------- any data -> tensors
def as_tensors(data: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept a `(inputs, targets)` tuple, a `TensorDataset`, any `Dataset` or a `DataLoader` of
    one input tensor and its targets, read whole into two tensors (`batches.columns`)."""
    from .batches import columns

    return one_input(*columns(data))


def one_input(inputs: Any, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from columns with exactly one input tensor; anything else is refused."""
    if isinstance(inputs, dict) or len(inputs) != 1:
        raise LandscapeError("this needs (inputs, targets) data with one input tensor; "
                             "the measurements (landscape.risk) take any batch structure")
    return inputs[0], y


def subset_indices(n_total: int, n: int | None, seed: int = 0) -> torch.Tensor | None:
    """A fixed random subset of ``n`` sample indices (sorted), or None for all samples."""
    from .rng import plain_generator

    if n is None or n >= n_total:
        return None
    if n <= 0:
        raise LandscapeError(f"samples must be positive, got {n}")
    return torch.randperm(n_total, generator=plain_generator(seed))[:n].sort().values


def iter_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive slices (views, no copies); the last batch may be smaller."""
    bs = len(x) if not batch_size else batch_size
    for i in range(0, len(x), bs):
        yield x[i:i + bs], y[i:i + bs]
