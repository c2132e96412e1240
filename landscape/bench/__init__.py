"""Benchmarks behind ``landscape bench``: each mode returns a flat dict of results.

Speed is compared as ratios measured in one process on one machine, never as absolute times in
tests; `machine_info` stamps every result with where it came from.
"""
from __future__ import annotations

import os
import platform

import torch


def machine_info() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
