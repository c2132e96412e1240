"""``landscape bench --data-on stream``: memory and time of streaming data through `EmpiricalRisk`.

Two measurements on a memory-mapped float32 image dataset (3 x 32 x 32, random values, random
labels) that the bench writes to disk, reads through a `DataLoader`, and deletes afterwards:

- memory: a 1D surface (2 points) and a top-eigenvalue run (Lanczos, a few products) over a
  dataset of ``--stream-gib`` GiB (default 4). The peak resident memory of the process is reset
  after the model and one warm-up batch, so the number reported is what the measurement adds on
  top of the model, torch and one batch. Pages read through the map are dropped once copied
  (``madvise(MADV_DONTNEED)``); the file stays in the page cache, which is not the process's.
- time: seconds per surface point, streaming from the file against the same samples held in
  memory (resident), on a dataset that fits (``--stream-fit-gib``, default 0.1), timed in turns;
  the median of the paired ratios is reported.
"""
from __future__ import annotations

import math
import mmap
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

SHAPE = (3, 32, 32)
SAMPLE_BYTES = int(np.prod(SHAPE)) * 4
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14


class MemmapImages(Dataset):
    """Float32 images in a raw file, read through one read-only map a batch at a time."""

    def __init__(self, path: Path, targets: torch.Tensor):
        self.path, self.targets = Path(path), targets
        self._map: mmap.mmap | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def _mm(self) -> mmap.mmap:
        if self._map is None:  # opened lazily: each DataLoader worker maps the file itself
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([i])
        return x[0], y[0]

    def __getitems__(self, indices: list) -> tuple[torch.Tensor, torch.Tensor]:
        mm = self._mm()
        lo, n = indices[0], len(indices)
        if indices != list(range(lo, lo + n)):
            parts = [self.__getitems__([i]) for i in indices]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        start, length = lo * SAMPLE_BYTES, n * SAMPLE_BYTES
        page = mmap.PAGESIZE
        first = start // page * page
        span = min(len(mm), start + length) - first
        try:  # map the batch's pages in one call instead of one fault per page
            mm.madvise(_MADV_POPULATE_READ, first, span)
        except OSError:
            pass
        x = np.frombuffer(mm, dtype=np.float32, count=n * int(np.prod(SHAPE)), offset=start).reshape(n, *SHAPE)
        out = torch.from_numpy(x.copy())
        del x
        mm.madvise(mmap.MADV_DONTNEED, first, span)  # copied: the pages need not stay in this process

        return out, self.targets[lo:lo + n]


def _whole(batch: Any) -> Any:
    return batch


def write_dataset(path: Path, n: int, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
    """``n`` random images written in chunks (plain writes: nothing of the file is mapped here)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for lo in range(0, n, chunk):
            f.write(rng.standard_normal((min(chunk, n - lo), *SHAPE), dtype=np.float32).tobytes())
    return torch.from_numpy(rng.integers(0, 10, n))


def memory_model() -> nn.Module:
    """An MLP: its Hessian products cost a few matmuls per sample, so 4 GiB stream in minutes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(SHAPE)), 8), nn.ReLU(), nn.Linear(8, 10)).eval()


def timing_model() -> nn.Module:
    """A small CIFAR-shaped convnet: what a surface point costs when the model does real work."""
    from ..models import build_model

    torch.manual_seed(0)
    return build_model("convnet", input_shape=SHAPE, num_classes=10, channels=(4, 8, 8)).eval()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _direction(model: nn.Module) -> dict:
    g = torch.Generator().manual_seed(1)
    return {n: torch.randn(p.shape, generator=g) * 0.1 for n, p in model.named_parameters()}


def run(args: Any) -> dict:
    from .. import hessian
    from ..evaluation import Evaluator
    from ..surface import compute_surface

    gib = float(getattr(args, "stream_gib", 4.0))
    fit_gib = float(getattr(args, "stream_fit_gib", 0.1))
    batch = int(args.samples or 2048)
    root = Path(tempfile.mkdtemp(prefix="landscape-stream-", dir=getattr(args, "stream_dir", None)))
    free = shutil.disk_usage(root).free / 2 ** 30
    if free < gib + fit_gib + 1:
        shutil.rmtree(root, ignore_errors=True)
        from ..errors import LandscapeError

        raise LandscapeError(f"{root} has {free:.1f} GiB free; the stream bench writes {gib + fit_gib:g} GiB: "
                             "use a smaller --stream-gib or another --stream-dir")
    model = memory_model()
    result: dict = {"mode": "stream", "shape": list(SHAPE), "batch_size": batch, "threads": torch.get_num_threads(),
                    "memory_model_params": sum(p.numel() for p in model.parameters())}
    try:
        # ---- memory: a surface and a top eigenvalue over a dataset larger than the resident budget
        n = math.ceil(gib * 2 ** 30 / SAMPLE_BYTES)
        t0 = time.perf_counter()
        big = root / "big.f32"
        targets = write_dataset(big, n)
        result.update(big_samples=n, big_gib=big.stat().st_size / 2 ** 30, write_seconds=time.perf_counter() - t0)
        loader = DataLoader(MemmapImages(big, targets), batch_size=batch, collate_fn=_whole)
        with torch.inference_mode():
            model(next(iter(loader))[0])  # warm-up: the model's own memory and one batch
        base = _rss_kib("VmRSS")
        result["peak_reset"] = _reset_peak()
        t0 = time.perf_counter()
        surf = compute_surface(model, [_direction(model)], loader, x=[0.0, 0.5], batch_size=batch,
                               data_on="stream", fold_bn=False, progress=False)
        t_surf = time.perf_counter() - t0
        t0 = time.perf_counter()
        top = hessian.eigenvalues(model, loader, k=1, max_iter=3, batch_size=batch, data_on="stream")
        t_eig = time.perf_counter() - t0
        peak = _rss_kib("VmHWM")
        result.update(rss_before_mib=base / 1024, peak_rss_mib=peak / 1024, peak_above_model_mib=(peak - base) / 1024,
                      surface_seconds=t_surf, surface_points=2, eig_seconds=t_eig, eig_hvps=top.n_hvps,
                      surface_loss=[float(v) for v in surf["train_loss"]], top_eig=float(top.values[0]))
        big.unlink()
        # ---- time: streaming from the file against the same samples in memory
        n_fit = math.ceil(fit_gib * 2 ** 30 / SAMPLE_BYTES)
        small = root / "small.f32"
        y = write_dataset(small, n_fit, seed=1)
        x = torch.from_numpy(np.fromfile(small, dtype=np.float32).reshape(n_fit, *SHAPE))
        model = timing_model()
        result["timing_model_params"] = sum(p.numel() for p in model.parameters())
        streaming = Evaluator(model, DataLoader(MemmapImages(small, y), batch_size=batch, collate_fn=_whole),
                              batch_size=batch, data_on="stream")
        resident = Evaluator(model, (x, y), batch_size=batch, data_on="device")
        assert streaming() == resident(), "streaming and resident values differ"
        ratios, times = [], {"stream": [], "device": []}
        for r in range(max(3, int(args.repeat))):
            order = [("stream", streaming), ("device", resident)][:: 1 if r % 2 else -1]  # who goes first alternates
            t = {}
            for name, ev in order:
                t0 = time.perf_counter()
                ev()
                t[name] = time.perf_counter() - t0
                times[name].append(t[name])
            ratios.append(t["stream"] / t["device"])
        result.update(fit_samples=n_fit, fit_gib=n_fit * SAMPLE_BYTES / 2 ** 30,
                      seconds_per_point_stream=float(np.median(times["stream"])),
                      seconds_per_point_device=float(np.median(times["device"])),
                      ratio_median=float(np.median(ratios)), ratios=[float(v) for v in ratios])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"streamed {result['big_gib']:.2f} GiB ({result['big_samples']:,} samples of {SHAPE}): surface "
          f"{result['surface_seconds']:.1f} s for 2 points, top eigenvalue {result['eig_seconds']:.1f} s "
          f"({result['eig_hvps']} HVPs); peak RSS {result['peak_rss_mib']:.0f} MiB, "
          f"{result['peak_above_model_mib']:.0f} MiB above the model's own ({result['rss_before_mib']:.0f} MiB)")
    print(f"time per point on {result['fit_gib']:.2f} GiB that fits: stream {result['seconds_per_point_stream']:.3f} s,"
          f" resident {result['seconds_per_point_device']:.3f} s, ratio {result['ratio_median']:.3f} (median of "
          f"{len(result['ratios'])} paired runs)")
    return result
