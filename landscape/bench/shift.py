"""``landscape bench --op shift``: the native shift kernel against the PyTorch reference.

The shift moves every element once (one read, one write), so its ceiling is a plain copy: the
kernel is judged by effective bandwidth, 2 * numel * element size / time, and by that bandwidth as
a fraction of a ``clone()`` of the same tensor measured in the same process on the same device
(the device-to-device copy bandwidth on a GPU).
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from ..errors import LandscapeError
from ..evaluation import resolve_device
from ..ops import shift_reference
from ..ops.shift import _ShiftFunction, _uses_extension, extension_info
from . import machine_info

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
          "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64, "double": torch.float64}
MIN_SECONDS_PER_SAMPLE = 0.02


def parse_shape(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise LandscapeError(f"--shape must be four positive integers N,C,H,W such as 128,96,32,32, got {text!r}")
    return shape  # type: ignore[return-value]


def parse_dtype(text: str) -> torch.dtype:
    try:
        return DTYPES[text.lower()]
    except KeyError:
        raise LandscapeError(f"--dtype must be one of float32, float16, bfloat16, float64, got {text!r}") from None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ops(ops: dict[str, Callable[[], object]], device: torch.device, repeat: int) -> dict[str, float]:
    """Best seconds per call of each op over ``repeat`` rounds.

    The ops take turns within each round, so load from other processes drifts over all of them
    alike and the ratios stay fair; each sample repeats the op long enough (>= 20 ms) to swamp
    launch overhead.
    """
    inner = {}
    for name, fn in ops.items():
        fn()  # warm up (allocator, caches, lazy CUDA init)
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        once = max(time.perf_counter() - start, 1e-7)
        inner[name] = max(1, min(1000, int(MIN_SECONDS_PER_SAMPLE / once)))
    best = {name: float("inf") for name in ops}
    for _ in range(repeat):
        for name, fn in ops.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            _sync(device)
            best[name] = min(best[name], (time.perf_counter() - start) / inner[name])
    return best


def run(args: argparse.Namespace) -> dict:
    shape = parse_shape(args.shape)
    dtype = parse_dtype(args.dtype)
    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LandscapeError("--device cuda given but torch sees no CUDA device; use --device cpu")
    k = int(getattr(args, "kernel_size", 3))
    d = int(getattr(args, "dilation", 1))
    repeat = args.repeat

    x = torch.randn(shape, device=device).to(dtype)
    moved = 2 * x.numel() * x.element_size()
    native = _uses_extension(x)

    def gbps(seconds: float) -> float:
        return moved / seconds / 1e9

    ops: dict[str, Callable[[], object]] = {"copy (clone)": lambda: x.clone(),
                                            "reference forward": lambda: shift_reference(x, k, d)}
    result = {"op": "shift", "shape": list(shape), "dtype": str(dtype).replace("torch.", ""), "device": str(device),
              "kernel_size": k, "dilation": d, "bytes_moved": moved, "extension": extension_info(),
              "backend": "extension" if native else "reference"}
    if native:
        result["matches_reference"] = bool(
            torch.equal(_ShiftFunction.apply(x, k, d, False), shift_reference(x, k, d))
            and torch.equal(_ShiftFunction.apply(x, k, d, True), shift_reference(x, k, d, reverse=True)))
        ops["extension forward"] = lambda: _ShiftFunction.apply(x, k, d, False)
        ops["extension backward"] = lambda: _ShiftFunction.apply(x, k, d, True)
    rows = list(time_ops(ops, device, repeat).items())
    copy_s = rows[0][1]

    print(f"shift kernel_size={k} dilation={d} on {tuple(shape)} {result['dtype']} ({device}), "
          f"{moved / 1e6:.1f} MB moved per call, best of {repeat}")
    print(f"{'':20s} {'ms':>9s} {'GB/s':>9s} {'of copy':>8s}")
    for name, seconds in rows:
        print(f"{name:20s} {seconds * 1e3:9.3f} {gbps(seconds):9.1f} {copy_s / seconds:8.0%}")
        key = name.split(" (")[0].replace(" ", "_")
        result[f"{key}_ms"] = seconds * 1e3
        result[f"{key}_gbps"] = gbps(seconds)
    if native:
        fwd = dict(rows)["extension forward"]
        result["fraction_of_copy"] = copy_s / fwd
        result["speedup_vs_reference"] = dict(rows)["reference forward"] / fwd
        print(f"extension: {result['speedup_vs_reference']:.1f}x the reference, "
              f"{result['fraction_of_copy']:.0%} of copy bandwidth; matches reference: {result['matches_reference']}")
    else:
        print("extension not used on this device/dtype (not built, or built without CUDA): reference only; "
              "build with `pip install --no-build-isolation ./cuda_ext`")
    result.update(machine_info())
    return result
