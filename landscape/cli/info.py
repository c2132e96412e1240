"""``landscape info``: versions, the active shift backend, MPI and devices, for bug reports."""
from __future__ import annotations

import argparse
import json
import platform

HELP = "show versions, the shift-kernel backend, the MPI library and available devices"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def _mpi_info() -> dict:
    try:
        import mpi4py
        from mpi4py import MPI
    except Exception as e:  # ImportError, or a broken MPI library failing to load
        return {"available": False, "reason": f"{type(e).__name__}: {e}".strip()}
    library = MPI.Get_library_version().strip().splitlines()
    major, minor = MPI.Get_version()
    first_line = " ".join(library[0].split()) if library else "unknown"
    return {"available": True, "mpi4py": mpi4py.__version__, "library": first_line, "standard": f"{major}.{minor}"}


def _device_info() -> dict:
    import torch

    from ..bench import machine_info

    machine = machine_info()
    info = {"cpu": machine["cpu"], "cores": machine["cores"], "torch_threads": machine["threads"],
            "cuda_available": torch.cuda.is_available(), "cuda_devices": []}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["cuda_devices"].append({"index": i, "name": props.name,
                                         "memory_gib": round(props.total_memory / 2**30, 1),
                                         "capability": f"{props.major}.{props.minor}"})
    return info


def collect() -> dict:
    """Everything ``landscape info`` reports, as plain data."""
    import torch

    from .. import __version__
    from ..ops import backend, extension_info

    ext = extension_info()
    shift = {"cpu": backend("cpu"), "extension": ext}
    if torch.cuda.is_available():
        shift["cuda"] = backend("cuda")
    return {"landscape": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "torch_cuda": torch.version.cuda, "shift_backend": shift,
            "mpi": _mpi_info(), "devices": _device_info()}


def _table(info: dict) -> list[tuple[str, str]]:
    shift, mpi, dev = info["shift_backend"], info["mpi"], info["devices"]
    ext = shift["extension"]
    if ext is None:
        ext_line = "not installed (pip install --no-build-isolation ./cuda_ext)"
    else:
        ext_line = f"{ext['path']} ({'CPU + CUDA' if ext['cuda_built'] else 'CPU only'})"
    backend_line = f"cpu: {shift['cpu']}" + (f", cuda: {shift['cuda']}" if "cuda" in shift else "")
    if mpi["available"]:
        mpi_line = f"{mpi['library']} (MPI {mpi['standard']}, mpi4py {mpi['mpi4py']})"
    else:
        mpi_line = f"not available ({mpi['reason']})"
    rows = [("landscape", info["landscape"]), ("python", info["python"]), ("platform", info["platform"]),
            ("torch", f"{info['torch']} (CUDA {info['torch_cuda'] or 'none'})"),
            ("shift backend", backend_line), ("shift extension", ext_line), ("MPI", mpi_line),
            ("CPU", f"{dev['cpu']}, {dev['cores']} cores, {dev['torch_threads']} torch threads")]
    if dev["cuda_devices"]:
        for d in dev["cuda_devices"]:
            rows.append((f"cuda:{d['index']}", f"{d['name']}, {d['memory_gib']} GiB, compute {d['capability']}"))
    else:
        rows.append(("CUDA", "no CUDA device available"))
    return rows


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    rows = _table(info)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
