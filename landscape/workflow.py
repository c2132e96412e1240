"""From checkpoint paths to a surface file: what ``landscape plot`` and ``landscape surface`` do.

Kept in the library (not the CLI) so scripts and notebooks can run the same job. The output
directory holds ``directions.h5`` and one surface file per mode and dimension
(``random_2d.h5``, ``line_1d.h5``, ``plane_2d.h5``), so a rerun finds and resumes its own file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .checkpoint import Checkpoint, load_checkpoint
from .data import get_dataset
from .directions import (interpolation_direction, load_directions, plane_directions, random_directions,
                         save_directions)
from .errors import LandscapeError
from .surface import Surface, compute_surface


@dataclass
class SurfaceJob:
    """Everything that defines one surface; the same job always writes the same file."""

    ckpt: str
    x: Sequence[float]
    y: Sequence[float] | None = None
    ckpt2: str | None = None
    ckpt3: str | None = None
    model: str | None = None
    model_args: Mapping[str, Any] | None = None
    dataset: str | None = None
    data_root: str | None = None
    splits: Sequence[str] = ("train", "test")
    norm: str = "filter"
    ignore: str = "biasbn"
    kind: str | None = None
    seed: int = 0
    orthogonalize: bool = False
    dir_file: str | None = None
    samples: int | None = None
    loss: str = "crossentropy"
    batch_size: int | None = None
    device: str | None = None
    rtol: float | None = None
    min_samples: int = 512
    precision: str = "fp32"
    layout: str = "contiguous"
    threads: int | None = None
    out: str = "out"
    progress: bool = True

    @property
    def mode(self) -> str:
        if self.dir_file:
            return "custom"
        return "plane" if self.ckpt3 else ("line" if self.ckpt2 else "random")

    def surface_path(self) -> Path:
        return Path(self.out) / f"{self.mode}_{1 if self.y is None else 2}d.h5"


def load_job_checkpoint(path: str, job: SurfaceJob, device: str = "cpu") -> Checkpoint:
    return load_checkpoint(path, model=job.model, model_args=job.model_args, map_location=device)


def _existing_attr(path: Path, name: str):
    """A resumed surface keeps the batch size and layout it was started with (sums stay bit-identical)."""
    if not path.exists():
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(name)
    except (OSError, ValueError):
        return None
    return value.decode() if isinstance(value, bytes) else (value.item() if hasattr(value, "item") else value)


def job_directions(job: SurfaceJob, base: Checkpoint) -> tuple[list[dict], dict]:
    """The job's directions and the attributes that describe them."""
    n = 1 if job.y is None else 2
    if job.dir_file:
        directions, attrs = load_directions(job.dir_file, base.model, job.kind)
        if len(directions) < n:
            raise LandscapeError(f"{job.dir_file} holds {len(directions)} direction(s); a {n}D surface needs {n}")
        return directions[:n], {"direction_file": str(job.dir_file), **{f"dir_{k}": v for k, v in attrs.items()}}
    kind = job.kind or ("states" if job.ckpt2 else "weights")
    if job.ckpt3:
        if job.y is None:
            raise LandscapeError("--ckpt3 defines a plane: give --y as well as --x")
        b, c = load_job_checkpoint(job.ckpt2, job), load_job_checkpoint(job.ckpt3, job)
        return plane_directions(base.model, b.model, c.model, kind), {"kind": kind, "ckpt2": job.ckpt2, "ckpt3": job.ckpt3}
    if job.ckpt2:
        b = load_job_checkpoint(job.ckpt2, job)
        dirs = [interpolation_direction(base.model, b.model, kind)]
        if job.y is not None:  # a random filter-normalized y next to the interpolation x
            dirs.append(random_directions(base.model, 1, job.norm, job.ignore, kind, job.seed)[0])
        return dirs, {"kind": kind, "ckpt2": job.ckpt2, "norm_y": job.norm if job.y is not None else "none"}
    dirs = random_directions(base.model, n, job.norm, job.ignore, kind, job.seed, job.orthogonalize)
    return dirs, {"kind": kind, "norm": job.norm, "ignore": job.ignore, "seed": job.seed,
                  "orthogonalize": job.orthogonalize}


def job_data(job: SurfaceJob, base: Checkpoint) -> tuple[str, dict]:
    name = job.dataset or base.meta.get("dataset")
    if not name:
        raise LandscapeError(f"{job.ckpt} does not record its dataset: pass --dataset NAME")
    return name, {split: get_dataset(name, split, job.data_root) for split in job.splits}


def run_surface_job(job: SurfaceJob, extra: Sequence = ()) -> Surface:
    """Load, make directions, compute (resuming) and return the surface; files go under ``job.out``.

    Under mpirun every rank runs this: rank 0 makes and saves the directions (the others get
    them by broadcast inside `compute_surface`) and writes the surface; each rank uses GPU
    ``local_rank % n_gpus`` when CUDA is present.
    """
    from .parallel import configure_threads, get_comm, rank_device, rank_of

    comm = get_comm()
    configure_threads(comm, job.threads)
    device = rank_device(comm, job.device)
    base = load_job_checkpoint(job.ckpt, job, device)
    directions, dir_attrs = job_directions(job, base)
    kind = dir_attrs.get("kind") or dir_attrs.get("dir_kind") or job.kind or "weights"
    name, splits = job_data(job, base)
    out = job.surface_path()
    batch_size = job.batch_size
    layout = None if job.layout == "auto" else job.layout
    if rank_of(comm) == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_directions(out.parent / f"{out.stem}_directions.h5", directions,
                        {**dir_attrs, "checkpoint_sha256": base.sha256, "checkpoint": str(job.ckpt)})
        batch_size = batch_size or _existing_attr(out, "batch_size")
        layout = layout or _existing_attr(out, "layout")
        if not batch_size or not layout:
            from .data import as_tensors
            from .evaluation import cached_batch_size, cached_layout

            inputs = as_tensors(next(iter(splits.values())))[0].to(device)
            batch_size = int(batch_size or cached_batch_size(base.model, inputs))
            layout = layout or cached_layout(base.model, inputs, batch_size)
    if comm is not None:
        batch_size, layout = comm.bcast((batch_size, layout), root=0)
    attrs = {"dataset": name, "checkpoint": str(job.ckpt), "checkpoint_sha256": base.sha256, "mode": job.mode,
             "model": base.meta.get("model", ""),
             **{k: v for k, v in dir_attrs.items() if k != "kind"},
             **{f"meta_{k}": v for k, v in base.meta.items() if isinstance(v, (int, float, str))}}
    return compute_surface(base.model, directions, splits, job.x, job.y, out, loss=job.loss,
                           batch_size=int(batch_size), device=device, kind=kind, samples=job.samples,
                           layout=str(layout),
                           rtol=job.rtol, min_samples=job.min_samples, precision=job.precision, extra=extra,
                           progress=job.progress, attrs=attrs, comm=comm)
