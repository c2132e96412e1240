"""Batches of any structure, and the two ways a measurement walks through them.

A batch is ``(inputs..., target)`` (a tuple or list: the last entry is the target) or a dict: the
target is the entry named ``target_key``, else the first of `TARGET_KEYS` present, and the other
entries are passed by name, ``model(**inputs)``. A model's output may be a tensor, a tuple (its
first entry) or anything with ``.logits`` (Hugging Face); `logits` picks the tensor.

`ResidentBatches` slices the data once into batches that stay on the device (the fast path
when it fits); `StreamingBatches` reads them from a `DataLoader` per pass, one batch copied
ahead while the previous one computes, so memory stays flat however large the data is. Both
yield `Batch` tuples ``(inputs, target, weight)`` in the same order with the same values, so a
measurement gives bit-identical numbers either way (on a CPU, at the same batch size).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, NamedTuple, Sequence, Union

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.dataloader import default_collate

from .errors import LandscapeError
from .losses import count_targets

TARGET_KEYS = ("labels", "targets", "target", "y", "label")
Inputs = Union[tuple, dict]
DATA_ON = ("auto", "device", "stream")
CPU_BUDGET = 2 << 30  # bytes of resident data on a CPU run before "auto" streams


class Batch(NamedTuple):
    inputs: Inputs   # positional tuple or keyword dict, as the model takes them
    target: torch.Tensor
    weight: int      # counted targets (`losses.count_targets`): the batch's share of a dataset mean


def split_batch(batch: Any, target_key: str | None = None) -> tuple[Inputs, torch.Tensor]:
    """``(inputs, target)`` of one batch by the rule in the module docstring."""
    if isinstance(batch, Mapping):
        key = target_key if target_key is not None else next((k for k in TARGET_KEYS if k in batch), None)
        if key is None or key not in batch:
            raise LandscapeError(f"a dict batch needs its target under {target_key!r}" if target_key is not None
                                 else f"a dict batch has none of the target keys {TARGET_KEYS}; pass target_key= "
                                 f"(keys present: {sorted(batch)})")
        return {k: v for k, v in batch.items() if k != key}, batch[key]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        if target_key is not None:
            raise LandscapeError("target_key applies to dict batches; a tuple batch's target is its last entry")
        return tuple(batch[:-1]), batch[-1]
    raise LandscapeError(f"a batch must be (inputs..., targets) or a dict with a target key, not {type(batch).__name__}")


def call_model(model: torch.nn.Module, inputs: Inputs) -> torch.Tensor:
    """The model's output tensor for one batch: ``model(*inputs)`` or ``model(**inputs)``."""
    return logits(model(**inputs) if isinstance(inputs, dict) else model(*inputs))


def logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if getattr(out, "logits", None) is not None:
        return out.logits
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise LandscapeError(f"the model returned {type(out).__name__}; it must return a tensor, a tuple whose first "
                         "entry is the outputs, or an object with .logits")


def _map(fn, inputs: Inputs) -> Inputs:
    if isinstance(inputs, dict):
        return {k: fn(v) for k, v in inputs.items()}
    return tuple(fn(v) for v in inputs)


def _leaves(inputs: Inputs) -> list:
    return list(inputs.values()) if isinstance(inputs, dict) else list(inputs)


def _mover(device: torch.device, dtype: torch.dtype | None, channels_last: bool, non_blocking: bool = False):
    """Move one tensor to the device; floating ones take ``dtype`` (the parameters' dtype)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def move(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            t = t.to(dtype)
        t = t.to(device, non_blocking=non_blocking)
        return t.contiguous(memory_format=fmt) if channels_last and t.dim() == 4 else t

    return move


# ---------------------------------------------------------------- the data as columns (resident mode)
def columns(data: Any, target_key: str | None = None) -> tuple[Inputs, torch.Tensor]:
    """The whole data as inputs and target columns (tensors of one common length).

    Tensors are taken as they are (no copy); a `Dataset` or `DataLoader` is read once and its
    batches concatenated.
    """
    if isinstance(data, (tuple, list)) and len(data) >= 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, target = split_batch(tuple(data), target_key)
    elif isinstance(data, Mapping) and all(isinstance(t, torch.Tensor) for t in data.values()):
        inputs, target = split_batch(data, target_key)
    elif isinstance(data, TensorDataset) and len(data.tensors) >= 2:
        inputs, target = split_batch(tuple(data.tensors), target_key)
    elif isinstance(data, (DataLoader, Dataset)):
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=1024, collate_fn=default_collate)
        parts = [split_batch(b, target_key) for b in loader]
        if not parts:
            raise LandscapeError("the DataLoader yielded no batches" if isinstance(data, DataLoader)
                                 else "the dataset is empty")
        first = parts[0][0]
        if isinstance(first, dict):
            inputs = {k: torch.cat([torch.as_tensor(p[0][k]) for p in parts]) for k in first}
        else:
            inputs = tuple(torch.cat([torch.as_tensor(p[0][i]) for p in parts]) for i in range(len(first)))
        target = torch.cat([torch.as_tensor(p[1]) for p in parts])
    else:
        raise LandscapeError(f"data must be a Dataset, a DataLoader, a tuple (inputs..., targets) or a dict of "
                             f"tensors, not {type(data).__name__}")
    lengths = {len(t) for t in _leaves(inputs) if isinstance(t, torch.Tensor)} | {len(target)}
    if len(lengths) > 1:
        raise LandscapeError(f"inputs and targets differ in length ({sorted(lengths)})")
    if len(target) == 0:
        raise LandscapeError("the data holds no samples")
    return inputs, target


def sampled_rows(loader: DataLoader) -> list[int] | None:
    """The dataset rows a `DataLoader`'s sampler picks when they are not simply all of them (a
    ``SubsetRandomSampler`` over a validation split, a list of indices), sorted; None when it walks
    the whole dataset, or batches come from a ``batch_sampler`` or an `IterableDataset` (as given).

    The data a loader stands for is the set its sampler draws from: a dataset mean over it is the
    same in any order. ``drop_last`` is a training convenience, not part of that set, so it is not
    applied. A sampler that draws with replacement has no such set and is refused.
    """
    from torch.utils.data import IterableDataset, RandomSampler, SequentialSampler, WeightedRandomSampler

    if isinstance(loader.dataset, IterableDataset) or loader.batch_size is None:
        return None
    sampler = loader.sampler
    if isinstance(sampler, WeightedRandomSampler) or getattr(sampler, "replacement", False):
        raise LandscapeError("the DataLoader's sampler draws with replacement, so it stands for no fixed set of "
                             "samples; pass its dataset, or a DataLoader without that sampler")
    if isinstance(sampler, (SequentialSampler, RandomSampler)) and len(sampler) == len(loader.dataset) \
            and not (loader.drop_last and len(sampler) % loader.batch_size):
        return None
    return sorted(set(int(i) for i in sampler))


def plain_loader(data: Any) -> Any:
    """``data``, but a `DataLoader` whose sampler picks a subset (`sampled_rows`) becomes one over that
    `Subset` with the same batch size, collate function and workers, walked in order: what every
    pass, count and subset of an `EmpiricalRisk` then reads (the sampler's own rows, all of them)."""
    if not isinstance(data, DataLoader):
        return data
    rows = sampled_rows(data)
    return data if rows is None else _subset_loader(data, rows)


def _subset_loader(loader: DataLoader, rows: list[int]) -> DataLoader:
    """A `DataLoader` over ``rows`` of ``loader``'s dataset, in that order, with its batch size, collate
    function and workers."""
    from torch.utils.data import Subset

    return DataLoader(Subset(loader.dataset, rows), batch_size=loader.batch_size or 1024,
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers)


def data_length(data: Any) -> int:
    if isinstance(data, DataLoader):
        rows = sampled_rows(data)
        return len(data.dataset) if rows is None else len(rows)  # type: ignore[arg-type]
    if isinstance(data, (tuple, list)):
        return len(data[-1])
    if isinstance(data, Mapping):
        return len(next(iter(data.values())))
    return len(data)


def head_columns(data: Any, samples: int, target_key: str | None = None) -> tuple[Inputs, torch.Tensor]:
    """The first ``samples`` samples as columns, reading no further than they need.

    A plan's pilot wants a few hundred samples of data that may be far larger than memory:
    tensors are sliced, a map-style `Dataset` is read that far by index, and a `DataLoader` or
    an `IterableDataset` only for the batches that hold them (`columns` reads everything).
    """
    from torch.utils.data import IterableDataset, Subset

    if samples <= 0:
        raise LandscapeError(f"samples must be positive, got {samples}")
    if isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=min(samples, 1024), collate_fn=default_collate)
    if isinstance(data, DataLoader):
        parts, n = [], 0
        for raw in data:
            inputs, target = split_batch(raw, target_key)
            parts.append(Batch(_map(torch.as_tensor, inputs), torch.as_tensor(target), 0))
            n += len(parts[-1].target)
            if n >= samples:
                break
        if not parts:
            raise LandscapeError("the DataLoader yielded no batches")
        inputs, target = concat(parts)
        return _map(lambda t: t[:samples], inputs), target[:samples]
    if isinstance(data, Dataset) and not isinstance(data, TensorDataset):
        data = Subset(data, range(min(samples, len(data))))  # type: ignore[arg-type]
    inputs, target = columns(data, target_key)
    return _map(lambda t: t[:samples], inputs), target[:samples]


def take(data: Any, indices: torch.Tensor | None, target_key: str | None = None) -> Any:
    """The samples ``indices`` of ``data`` in that order, without reading the others (None: ``data``).

    Tensors are indexed; a map-style `Dataset` is wrapped in a `Subset`, and a `DataLoader` rebuilt
    over a `Subset` of its dataset with its batch size, collate function and workers. An
    `IterableDataset` cannot be indexed: it is read whole, then indexed.
    """
    from torch.utils.data import IterableDataset, Subset

    if indices is None:
        return data
    data = plain_loader(data)  # indices count the rows a sampler picks, not the whole dataset's
    if isinstance(data, Mapping):
        return {k: t[indices] for k, t in data.items()}
    if in_memory(data):
        return tuple(t[indices] for t in (data.tensors if isinstance(data, TensorDataset) else data))
    if isinstance(data.dataset if isinstance(data, DataLoader) else data, IterableDataset):  # no index to read by
        inputs, target = columns(data, target_key)
        inputs, target = _map(lambda t: t[indices], inputs), target[indices]
        return {**inputs, target_key or "target": target} if isinstance(inputs, dict) else (*inputs, target)
    rows = indices.tolist()
    if isinstance(data, DataLoader):
        return _subset_loader(data, rows)
    return Subset(data, rows)


class ResidentBatches:
    """The data sliced once into batches that live on the device (views where possible)."""

    streaming = False

    def __init__(self, data: Any, batch_size: int, device: torch.device, dtype: torch.dtype | None,
                 order: torch.Tensor | None = None, target_key: str | None = None, channels_last: bool = False):
        inputs, target = columns(take(data, order), target_key)  # only the samples of ``order`` are read
        move = _mover(device, dtype, channels_last)
        # Cast on the host first (one conversion of the whole column), then slice: as the operators always did.
        inputs = _map(lambda t: t.to(dtype) if dtype is not None and t.is_floating_point() else t, inputs)
        target = target.to(dtype) if dtype is not None and target.is_floating_point() else target
        self.batches = []
        for i in range(0, len(target), batch_size):
            yb = target[i:i + batch_size]
            self.batches.append(Batch(_map(lambda t: move(t[i:i + batch_size]), inputs), move(yb), count_targets(yb)))
        self.num_samples = len(target)
        self.total_weight = sum(b.weight for b in self.batches)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)

    def head(self, samples: int) -> list[Batch]:
        out, n = [], 0
        for b in self.batches:
            if n >= samples:
                break
            out.append(b)
            n += len(b.target)
        return out


class StreamingBatches:
    """Batches read from a `DataLoader` at every pass; one is copied ahead while the last computes.

    The loader is the user's when they gave one and nothing reorders it; otherwise one is built
    over the dataset (the user's collate function and workers kept), with ``pin_memory`` on CUDA
    and the sample order given as a sampler, so a subset or permutation never copies the data.
    """

    streaming = True

    def __init__(self, data: Any, batch_size: int | None, device: torch.device, dtype: torch.dtype | None,
                 order: torch.Tensor | None = None, target_key: str | None = None, channels_last: bool = False,
                 num_workers: int | None = None):
        self.device, self.target_key = device, target_key
        self.move = _mover(device, dtype, channels_last, non_blocking=device.type == "cuda")
        user = data if isinstance(data, DataLoader) else None
        if user is not None and order is None and batch_size in (None, user.batch_size):
            self.loader = user
        else:
            dataset = user.dataset if user is not None else _as_dataset(data)
            workers = num_workers if num_workers is not None else (user.num_workers if user is not None else 0)
            batched = isinstance(dataset, _Columns)  # one gather (or slice) per batch, not one item at a time
            collate = _whole if batched else (user.collate_fn if user is not None else default_collate)
            self.loader = DataLoader(dataset, batch_size=batch_size or (user.batch_size if user else None) or 1,
                                     sampler=order.tolist() if order is not None else None,
                                     collate_fn=collate, num_workers=workers, pin_memory=device.type == "cuda",
                                     persistent_workers=workers > 0)
        self.num_samples = len(order) if order is not None else data_length(data)
        self._order, self._data = order, data
        self._total: int | None = None

    @property
    def total_weight(self) -> int:
        """Counted targets of the whole data: from a ``targets`` column when the dataset has one, else a pass."""
        if self._total is None:
            column = _target_column(self._data)
            if column is not None:
                self._total = count_targets(column if self._order is None else column[self._order])
            else:
                self._total = sum(count_targets(split_batch(b, self.target_key)[1]) for b in self.loader)
        return self._total

    def _batch(self, raw: Any) -> Batch:
        inputs, target = split_batch(raw, self.target_key)
        target = torch.as_tensor(target)
        return Batch(_map(self.move, inputs), self.move(target), count_targets(target))

    def __iter__(self) -> Iterator[Batch]:
        it = iter(self.loader)
        try:
            ahead = self._batch(next(it))
        except StopIteration:
            return
        for raw in it:
            current, ahead = ahead, self._batch(raw)  # the next copy is issued before this batch computes
            yield current
        yield ahead

    def head(self, samples: int) -> list[Batch]:
        out, n = [], 0
        for b in self:
            if n >= samples:
                break
            out.append(b)
            n += len(b.target)
        return out


def _as_dataset(data: Any) -> Dataset:
    if in_memory(data) or (isinstance(data, Mapping) and all(isinstance(t, torch.Tensor) for t in data.values())):
        return _Columns(data)
    if isinstance(data, Dataset):
        return data
    raise LandscapeError(f"data must be a Dataset, a DataLoader, a tuple (inputs..., targets) or a dict of "
                         f"tensors, not {type(data).__name__}")


class _Columns(Dataset):
    """Tensors already in memory, served a batch at a time: a slice (a view) for consecutive
    indices, one gather otherwise, so streaming them costs what resident batches cost."""

    def __init__(self, data: Any):
        self.cols = dict(data) if isinstance(data, Mapping) else tuple(data.tensors if isinstance(data, TensorDataset)
                                                                       else data)

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())) if isinstance(self.cols, dict) else self.cols[0])

    def __getitem__(self, i: int) -> Any:
        return _map(lambda t: t[i], self.cols)

    def __getitems__(self, indices: list) -> Any:
        lo = indices[0]
        if indices == list(range(lo, lo + len(indices))):
            return _map(lambda t: t[lo:lo + len(indices)], self.cols)
        idx = torch.as_tensor(indices)
        return _map(lambda t: t[idx], self.cols)


def _whole(batch: Any) -> Any:
    """The collate function of datasets that fetch whole batches (``__getitems__``)."""
    return batch


def _target_column(data: Any) -> torch.Tensor | None:
    """The targets as one tensor without reading the inputs, when the data exposes them."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, (tuple, list)) and isinstance(data[-1], torch.Tensor):
        return data[-1]
    if isinstance(data, TensorDataset):
        return data.tensors[-1]
    t = getattr(data, "targets", None)
    if isinstance(t, torch.Tensor) and len(t) == len(data):
        return t
    return None


def estimated_bytes(data: Any, samples: int) -> int:
    """Bytes the data would take resident: from the tensors, or one item times the sample count."""
    if isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data):
        per = sum(t[:1].nbytes for t in data)
    elif isinstance(data, TensorDataset):
        per = sum(t[:1].nbytes for t in data.tensors)
    elif isinstance(data, Mapping):
        per = sum(t[:1].nbytes for t in data.values())
    else:
        dataset = data.dataset if isinstance(data, DataLoader) else data
        item = dataset[0]
        leaves = list(item.values()) if isinstance(item, Mapping) else list(item) if isinstance(item, (tuple, list)) else [item]
        per = sum(torch.as_tensor(t).nbytes for t in leaves)
    return int(per) * int(samples)


def in_memory(data: Any) -> bool:
    """Already tensors in this process (resident costs no copy on a CPU)."""
    if isinstance(data, (tuple, list)):
        return all(isinstance(t, torch.Tensor) for t in data)
    if isinstance(data, Mapping):
        return all(isinstance(t, torch.Tensor) for t in data.values())
    return isinstance(data, TensorDataset)


def resident_budget(device: torch.device) -> int:
    """A quarter of the free device memory on CUDA, `CPU_BUDGET` elsewhere."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    return CPU_BUDGET


def choose_residency(data_on: str, data: Any, samples: int, device: torch.device) -> str:
    """``"device"`` or ``"stream"``: as asked, or for ``"auto"`` by the size against `resident_budget`."""
    if data_on not in DATA_ON:
        raise LandscapeError(f"data_on must be one of {', '.join(DATA_ON)}, got {data_on!r}")
    if data_on != "auto":
        return data_on
    if in_memory(data) and device.type == "cpu":
        return "device"
    return "device" if estimated_bytes(data, samples) <= resident_budget(device) else "stream"


def concat(batches: Sequence[Batch]) -> tuple[Inputs, torch.Tensor]:
    """One batch's worth of columns from several batches (for groups of samples)."""
    first = batches[0].inputs
    if isinstance(first, dict):
        inputs: Inputs = {k: torch.cat([b.inputs[k] for b in batches]) for k in first}
    else:
        inputs = tuple(torch.cat([b.inputs[i] for b in batches]) for i in range(len(first)))
    return inputs, torch.cat([b.target for b in batches])


def slice_batch(inputs: Inputs, target: torch.Tensor, lo: int, hi: int) -> Batch:
    yb = target[lo:hi]
    return Batch(_map(lambda t: t[lo:hi], inputs), yb, count_targets(yb))


def example_inputs(data: Any, n: int = 2, target_key: str | None = None) -> Inputs:
    """The inputs of the first ``n`` samples (to trace or time a model), read without the rest."""
    if in_memory(data) or isinstance(data, Mapping):
        inputs, _ = columns(data, target_key)
        return _map(lambda t: t[:n], inputs)
    if isinstance(data, DataLoader):  # one batch, as the loader makes it
        return _map(lambda t: t[:n], split_batch(next(iter(data)), target_key)[0])
    return split_batch(default_collate([data[i] for i in range(min(n, len(data)))]), target_key)[0]
