"""From checkpoint paths to a surface file: what ``landscape plot`` and ``landscape surface`` do.

Kept in the library (not the CLI) so scripts and notebooks can run the same job. The output
directory holds ``directions.h5`` and one surface file per mode and dimension
(``random_2d.h5``, ``line_1d.h5``, ``plane_2d.h5``), so a rerun finds and resumes its own file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .checkpoint import Checkpoint, load_checkpoint, require_finite
from .data import get_dataset, source_of
from .directions import (interpolation_direction, load_directions, orthogonal_to, plane_directions,
                         random_directions, save_directions)
from .errors import LandscapeError
from .imports import default_loss
from .surface import Surface, compute_surface, read_surface_file, subset_hash

if TYPE_CHECKING:
    from .hessian.extremes import EigenExtremes


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
    bias_dir: str = "random"  # with ignore="none": how 1-D tensors move (random | weights, the older tool's)
    kind: str | None = None
    seed: int = 0
    orthogonalize: bool = False
    dir_file: str | None = None
    samples: int | None = None
    loss: str | None = None  # None: the checkpoint's own (landscape.imports.default_loss)
    batch_size: int | None = None
    device: str | None = None
    rtol: float | None = None
    min_samples: int = 512
    precision: str | None = None  # fp32 | tf32 | bf16; None: the resumed file's, else fp32
    layout: str = "auto"
    fold_bn: str = "auto"  # auto | on | off: evaluate with BatchNorm folded into the convs (landscape.fusion)
    # BatchNorm statistics at each point (landscape.bnstats): auto recomputes them between checkpoints
    # and wherever the directions move them
    bn_stats: str = "auto"
    bn_samples: int | None = 2000
    threads: int | None = None
    data_on: str = "auto"  # auto | device | stream (landscape.risk)
    out: str = "out"
    progress: bool = True
    eig: bool = False  # also max_eig/min_eig of the train-loss Hessian at every point (one Lanczos run each)
    eig_tol: float = 1e-3
    eig_max_iter: int = 100
    eig_samples: int | None = None  # Hessian on a fixed random subset of this many train samples
    eig_seed: int = 0  # picks that subset and the Lanczos start vector

    @property
    def mode(self) -> str:
        if self.dir_file:
            return "custom"
        return "plane" if self.ckpt3 else ("line" if self.ckpt2 else "random")

    def surface_path(self) -> Path:
        return Path(self.out) / f"{self.mode}_{1 if self.y is None else 2}d.h5"


def load_job_checkpoint(path: str, job: SurfaceJob, device: str = "cpu") -> Checkpoint:
    """The checkpoint, refused up front if it holds NaN or infinite weights (a landscape of NaN is no landscape)."""
    return require_finite(load_checkpoint(path, model=job.model, model_args=job.model_args, map_location=device))


def _existing_attrs(path: Path) -> dict:
    """The attributes of the landscape surface file at ``path``; {} when there is none or it is
    damaged (`compute_surface` refuses those with the reason, before anything is written).

    A resumed surface keeps the batch size, layout and BN folding it was started with (sums stay
    bit-identical) unless they are given explicitly.
    """
    if not path.exists():
        return {}
    try:
        attrs = read_surface_file(path, "")[-1]
    except LandscapeError:
        return {}
    return attrs if attrs.get("format") == "landscape-surface" else {}


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
        if job.y is not None:  # a random normalized y, orthogonal to the line: the plane through both minima
            rand = random_directions(base.model, 1, job.norm, job.ignore, kind, job.seed, bias_dir=job.bias_dir)[0]
            dirs.append(orthogonal_to(rand, dirs[0]))
        return dirs, {"kind": kind, "ckpt2": job.ckpt2, "norm_y": job.norm if job.y is not None else "none",
                      "y_orthogonal": job.y is not None, **(_bias_dir_attr(job) if job.y is not None else {})}
    dirs = random_directions(base.model, n, job.norm, job.ignore, kind, job.seed, job.orthogonalize, job.bias_dir)
    return dirs, {"kind": kind, "norm": job.norm, "ignore": job.ignore, "seed": job.seed,
                  "orthogonalize": job.orthogonalize, **_bias_dir_attr(job)}


def _bias_dir_attr(job: SurfaceJob) -> dict:
    """Recorded (direction file, surface fingerprint) where it matters: random directions with ignore='none'."""
    return {"bias_dir": job.bias_dir} if job.ignore == "none" else {}


def job_data(job: SurfaceJob, base: Checkpoint) -> tuple[str, dict]:
    """The dataset's name and its splits as measurements take them: a user factory's Dataset or
    DataLoader unread (`landscape.data.UserData`), for `compute_surface` to stream or slice."""
    name = base.dataset_name(job.dataset)
    return name, {split: _split_data(name, split, job) for split in job.splits}


def _split_data(name: str, split: str, job: SurfaceJob) -> Any:
    return source_of(get_dataset(name, split, job.data_root, lazy=True))


class EigMeasure:
    """The job's per-point Hessian extremes, plus an ``eig_converged`` flag (1/0) per point.

    The flag is an array rather than a counter because points are computed on several ranks
    and across resumed runs; its zeros are the points whose Lanczos run stopped at
    ``eig_max_iter`` before reaching ``eig_tol``. ``fingerprint`` is what `compute_surface`
    stores and checks on resume, so a file never mixes eigenvalues computed two ways.
    """

    def __init__(self, extremes: EigenExtremes, fingerprint: Mapping[str, Any]):
        self.extremes = extremes
        self.fingerprint = dict(fingerprint)
        self.names = (*extremes.names, "eig_converged")

    def __call__(self, model) -> dict[str, float]:
        before = self.extremes.n_unconverged
        values = self.extremes(model)
        return {**values, "eig_converged": float(self.extremes.n_unconverged == before)}


def _check_eig_settings(job: SurfaceJob) -> None:
    if not job.eig_tol > 0:
        raise LandscapeError(f"--eig-tol must be positive, got {job.eig_tol}")
    if job.eig_max_iter < 2:
        raise LandscapeError(f"--eig-max-iter must be at least 2 (one Lanczos run gives both ends), "
                             f"got {job.eig_max_iter}")
    if job.eig_samples is not None and job.eig_samples < 1:
        raise LandscapeError(f"--eig-samples must be positive, got {job.eig_samples}")


def job_eig_measure(job: SurfaceJob, dataset: str, splits: Mapping[str, Any], device: str) -> EigMeasure:
    """Hessian extremes of the train loss (weight decay not included) on the job's eig subset."""
    from .batches import data_length, take
    from .data import subset_indices
    from .hessian.extremes import eigen_extremes

    train = splits["train"] if "train" in splits else _split_data(dataset, "train", job)
    idx = subset_indices(data_length(train), job.eig_samples, job.eig_seed)
    f = eigen_extremes(take(train, idx), job.loss, tol=job.eig_tol, max_iter=job.eig_max_iter, seed=job.eig_seed,
                       device=device)
    subset = subset_hash(idx)
    return EigMeasure(f, {"eig_tol": job.eig_tol, "eig_max_iter": job.eig_max_iter,
                          "eig_samples": data_length(train) if idx is None else len(idx), "eig_subset": subset,
                          "eig_seed": job.eig_seed,
                          "eig_split": "train", "eig_weight_decay": 0.0})


def eig_note(surface: Surface) -> str | None:
    """One line on points whose Lanczos run did not converge, or None when all did (or no --eig)."""
    if "eig_converged" not in surface:
        return None
    flags = surface["eig_converged"][surface.done]
    bad = int((flags == 0).sum())
    if not bad:
        return None
    return (f"note: at {bad}/{flags.size} points Lanczos did not reach --eig-tol {surface.attrs.get('eig_tol')} "
            f"within --eig-max-iter {surface.attrs.get('eig_max_iter')} (eig_converged = 0 there); there max_eig "
            "is a lower and min_eig an upper bound")


def _check_eig_resume(job: SurfaceJob, out: Path, had: Mapping[str, Any]) -> None:
    """Say in CLI terms why an existing file (attributes ``had``) cannot take this job (settings are
    checked by the fingerprint)."""
    if not had:
        return  # no file yet, or one SurfaceStore refuses with its own message
    tol = had.get("eig_tol")
    if job.eig and tol is None:
        raise LandscapeError(f"{out} was computed without --eig; use another --out for a surface with Hessian "
                             "eigenvalues (or delete the file to recompute)")
    if not job.eig and tol is not None:
        tol = f"{tol:g}" if isinstance(tol, (int, float)) else tol
        flags = f"--eig --eig-tol {tol} --eig-max-iter {had.get('eig_max_iter')}"
        if had.get("eig_subset") != "all":
            flags += f" --eig-samples {had.get('eig_samples')}"
        raise LandscapeError(f"{out} was computed with {flags}; add those to resume it, draw it with landscape "
                             "render, or use another --out")


def run_surface_job(job: SurfaceJob, extra: Sequence = ()) -> Surface:
    """Load, make directions, compute (resuming) and return the surface; files go under ``job.out``.

    Under mpirun every rank runs this: rank 0 makes and saves the directions (the others get
    them by broadcast inside `compute_surface`) and writes the surface; each rank uses GPU
    ``local_rank % n_gpus`` when CUDA is present. With ``job.eig`` each point also gets
    ``max_eig``, ``min_eig`` and ``eig_converged`` (see `EigMeasure`), computed by the same
    schedule, and a file made with other eig settings (or none) is refused rather than mixed.
    """
    from .parallel import configure_threads, get_comm, on_root, rank_device, rank_of

    if job.eig:
        _check_eig_settings(job)
    comm = get_comm()
    configure_threads(comm, job.threads)
    device = rank_device(comm, job.device)
    base = load_job_checkpoint(job.ckpt, job, device)
    job.loss = default_loss(job.loss, base.meta)
    directions, dir_attrs = job_directions(job, base)
    kind = dir_attrs.get("kind") or dir_attrs.get("dir_kind") or job.kind or "weights"
    name, splits = job_data(job, base)
    out = job.surface_path()
    batch_size = job.batch_size
    layout = None if job.layout == "auto" else job.layout
    fold_bn = {True: "on", False: "off"}.get(job.fold_bn, job.fold_bn)
    if fold_bn not in ("auto", "on", "off"):
        raise LandscapeError(f"--fold-bn must be auto, on or off, got {job.fold_bn!r}")
    had = on_root(comm, lambda: _existing_attrs(out))  # read once, on the rank that writes
    _check_eig_resume(job, out, had)
    bn_stats = "recompute" if job.bn_stats == "auto" and job.mode in ("line", "plane") else job.bn_stats
    bn_data = None if "train" in splits else _split_data(name, "train", job)
    if job.eig:
        extra = [*extra, job_eig_measure(job, name, splits, device)]
    if rank_of(comm) == 0:
        batch_size = batch_size or had.get("batch_size")
        layout = layout or had.get("layout")
        if fold_bn == "auto" and had:  # resume as it was made
            fold_bn = "on" if had.get("fold_bn") not in (None, 0, "0", "none") else "off"
        if not batch_size or not layout:
            from .batches import head_columns
            from .data import one_input
            from .evaluation import MEASURE_SAMPLES, cached_batch_size, cached_layout

            # the samples the timing uses (`measure_batch_size`), not the whole split
            inputs = one_input(*head_columns(next(iter(splits.values())), MEASURE_SAMPLES))[0].to(device)
            batch_size = int(batch_size or cached_batch_size(base.model, inputs))
            layout = layout or cached_layout(base.model, inputs, batch_size)
    if comm is not None:
        batch_size, layout, fold_bn = comm.bcast((batch_size, layout, fold_bn), root=0)
    attrs = {"dataset": name, "checkpoint": str(job.ckpt), "checkpoint_sha256": base.sha256, "mode": job.mode,
             "model": base.meta.get("model", ""),
             **{k: v for k, v in dir_attrs.items() if k != "kind"},
             **{f"meta_{k}": v for k, v in base.meta.items() if isinstance(v, (int, float, str))}}
    return compute_surface(base.model, directions, splits, job.x, job.y, out, loss=job.loss,
                           batch_size=int(batch_size), device=device, kind=kind, samples=job.samples,
                           layout=str(layout), fold_bn=fold_bn, bn_stats=bn_stats, bn_data=bn_data,
                           bn_samples=job.bn_samples,
                           rtol=job.rtol, min_samples=job.min_samples, extra=extra,
                           precision=job.precision or had.get("precision") or "fp32",
                           progress=job.progress, attrs=attrs, comm=comm, data_on=job.data_on,
                           before_write=lambda: save_directions(  # once the surface accepted this run
                               out.parent / f"{out.stem}_directions.h5", directions,
                               {**dir_attrs, "checkpoint_sha256": base.sha256, "checkpoint": str(job.ckpt)}))
