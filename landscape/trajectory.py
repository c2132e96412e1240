"""Training trajectories: PCA directions from a run's snapshots, and the path drawn over the contour.

Random directions are nearly orthogonal to the path an optimizer takes (Li et al. 2018,
section 7), so a trajectory projected on them looks like noise. Instead take the snapshots
``theta_0 .. theta_{n-1}`` of one run and its final weights ``theta_n``, form the matrix
``M = [theta_0 - theta_n; ...; theta_{n-1} - theta_n]`` and use its top two principal
directions (PCA: singular vectors of the column-centred ``M``, as the loss-landscape code's
``sklearn.decomposition.PCA``). Each snapshot's coordinates are ``(theta_i - theta_n) . d_k``,
so the final model sits at the origin, and each axis says which fraction of the trajectory's
variance it explains: a path in a plane that explains 40% of the motion is a very different
picture from one that explains 95%.

A run directory is what ``landscape train --snapshot-every`` and ``landscape sweep`` write:
``RUN_DIR/model.pt`` and ``RUN_DIR/snapshots/epoch_XXX.pt``. The directions go to an ordinary
direction file (``trajectory_directions.h5``) whose attributes hold the explained variance, the
projected path and the epochs, so any tool that reads direction files can use it, and a rerun
reuses it as long as the snapshots are unchanged.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .errors import LandscapeError

DIRECTION_FILE = "trajectory_directions.h5"
TRAJECTORY_POINTS = 21  # points per axis of the grid around a path when none is given: a first look, 441 points
_SNAPSHOT = re.compile(r"^epoch_(\d+)\.pt$")
_RELATIVE_TOL = 1e-10  # a principal direction whose variance is below this share of the first does not exist


class TrajectoryGridWarning(UserWarning):
    """The path leaves the grid the user asked for; the grid was widened to hold it."""


@dataclass
class Trajectory:
    """Two PCA directions of a run's trajectory and every snapshot's coordinates in their plane.

    ``coords[i]`` is snapshot ``i`` (epoch ``epochs[i]``) projected on ``directions``;
    ``explained_variance[k]`` is the share of the trajectory's variance along direction ``k``.
    """

    directions: list[dict[str, torch.Tensor]]
    explained_variance: np.ndarray
    coords: np.ndarray
    epochs: list[int]
    singular_values: np.ndarray
    kind: str = "weights"
    ignore: str = "biasbn"
    final_epoch: float | None = None
    run_dir: str | None = None
    source: str = ""  # fingerprint of the files the PCA was computed from
    attrs: dict = field(default_factory=dict)

    @property
    def xs(self) -> np.ndarray:
        return self.coords[:, 0]

    @property
    def ys(self) -> np.ndarray:
        return self.coords[:, 1]

    def path(self) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """The path to draw: the snapshots, then the final model at the origin if no snapshot is it."""
        xs, ys, labels = list(self.xs), list(self.ys), list(self.epochs)
        final_is_last = bool(len(xs)) and np.hypot(xs[-1], ys[-1]) <= 1e-9 * max(1.0, float(np.abs(self.coords).max()))
        if not final_is_last:
            xs.append(0.0)
            ys.append(0.0)
            labels.append(_epoch_label(self.final_epoch) if self.final_epoch is not None else "final")
        return np.asarray(xs), np.asarray(ys), labels

    def file_attrs(self) -> dict:
        """Attributes for the direction file: plain strings and numbers, lists as JSON."""
        return {
            "method": "pca", "kind": self.kind, "ignore": self.ignore, "norm": "none",
            "explained_variance": json.dumps([float(v) for v in self.explained_variance]),
            "singular_values": json.dumps([float(v) for v in self.singular_values]),
            "trajectory_x": json.dumps([float(v) for v in self.xs]),
            "trajectory_y": json.dumps([float(v) for v in self.ys]),
            "epochs": json.dumps([int(e) for e in self.epochs]),
            "final_epoch": "none" if self.final_epoch is None else float(self.final_epoch),
            "run_dir": self.run_dir or "none", "source": self.source, "n_snapshots": len(self.epochs),
            **self.attrs,
        }


def _epoch_label(epoch: float) -> Any:
    return int(epoch) if float(epoch).is_integer() else round(float(epoch), 2)


# --------------------------------------------------------------------------- PCA
def pca_directions(snapshots: Sequence[Mapping[str, torch.Tensor]], final: Mapping[str, torch.Tensor],
                   ignore: str = "biasbn") -> tuple[list[dict[str, torch.Tensor]], np.ndarray, np.ndarray, np.ndarray]:
    """Top-2 principal directions of ``M = [s_i - final]`` (rows centred), with the path's coordinates.

    Returns ``(directions, explained_variance_ratio, coords, singular_values)``: two unit-norm
    directions keyed like ``final``, the share of the total variance each explains, the
    ``(n, 2)`` projections ``(s_i - final) . d_k`` (not centred, so ``final`` is the origin),
    and all singular values of the centred matrix. Signs are fixed so the first snapshot has
    non-positive coordinates (the path runs towards the origin). ``ignore="biasbn"`` leaves
    1-D tensors (biases, BN) out, as Li et al.'s code does.

    Computed through the ``n x n`` Gram matrix in float64, summed tensor by tensor, so memory is
    the snapshots themselves, not a second ``n x P`` copy.
    """
    if ignore not in ("biasbn", "none"):
        raise LandscapeError(f"unknown ignore {ignore!r}; use 'biasbn' or 'none'")
    n = len(snapshots)
    if n < 3:
        raise LandscapeError(f"a trajectory needs at least 3 snapshots for two principal directions, got {n}; "
                             "save more (landscape train --snapshot-every N)")
    names = list(final)
    for i, snap in enumerate(snapshots):
        missing = [k for k in names if k not in snap]
        if missing:
            raise LandscapeError(f"snapshot {i} lacks tensors of the final model ({missing[:3]}); "
                                 "the snapshots come from another architecture")
    used = [k for k in names if not (ignore == "biasbn" and final[k].dim() <= 1)]
    if not used:
        raise LandscapeError("every tensor is 1-D and ignore='biasbn' leaves nothing to project; use ignore='none'")
    diffs: dict[str, torch.Tensor] = {}
    gram = torch.zeros(n, n, dtype=torch.float64)
    for k in used:
        f = final[k].detach().to("cpu", torch.float64).reshape(-1)
        if any(tuple(s[k].shape) != tuple(final[k].shape) for s in snapshots):
            raise LandscapeError(f"tensor {k!r} changes shape between snapshots and the final model")
        d = torch.stack([s[k].detach().to("cpu", torch.float64).reshape(-1) - f for s in snapshots])
        gram += d @ d.T
        diffs[k] = d
    centre = torch.eye(n, dtype=torch.float64) - 1.0 / n
    gram_c = centre @ gram @ centre
    evals, evecs = torch.linalg.eigh(0.5 * (gram_c + gram_c.T))
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    total = float(evals.sum())
    if not total > 0:
        raise LandscapeError("the snapshots do not move relative to each other; there is no trajectory to analyse")
    if float(evals[1]) <= _RELATIVE_TOL * float(evals[0]):
        raise LandscapeError("the snapshots lie on a straight line: a second principal direction does not exist")
    svals = evals.sqrt()
    directions: list[dict[str, torch.Tensor]] = []
    coords = np.zeros((n, 2))
    for c in range(2):
        u = evecs[:, c] - evecs[:, c].mean()  # exactly orthogonal to the all-ones vector
        vec = {k: diffs[k].T @ u / svals[c] for k in used}
        scale = float(torch.sqrt(sum((v ** 2).sum() for v in vec.values())))
        vec = {k: v / scale for k, v in vec.items()}  # unit norm up to rounding, made exact
        proj = sum(diffs[k] @ vec[k] for k in used).numpy()
        if proj[0] > 0:
            vec = {k: -v for k, v in vec.items()}
            proj = -proj
        coords[:, c] = proj
        directions.append({k: (vec[k].reshape(final[k].shape).to(torch.float32) if k in vec else
                               torch.zeros(final[k].shape, dtype=torch.float32)) for k in names})
    ratio = (evals[:2] / total).numpy()
    return directions, ratio, coords, svals.numpy()


# --------------------------------------------------------------------------- run directories
def snapshot_files(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of ``RUN_DIR/snapshots/epoch_XXX.pt``, ordered by epoch number."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LandscapeError(f"run directory {str(run_dir)!r} does not exist")
    found = []
    for p in (run_dir / "snapshots").glob("epoch_*.pt"):
        m = _SNAPSHOT.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    if not found:
        raise LandscapeError(f"{run_dir} has no snapshots/epoch_XXX.pt files; train with --snapshot-every N "
                             "(landscape train or landscape sweep) to record the trajectory")
    return sorted(found)


def _final_path(run_dir: Path) -> Path:
    final = run_dir / "model.pt"
    if not final.exists():
        raise LandscapeError(f"{run_dir} has no final model.pt; the trajectory is analysed relative to it "
                             "(was the run interrupted?)")
    return final


def _source_fingerprint(final: Path, snapshots: Sequence[Path], kind: str, ignore: str) -> str:
    from .checkpoint import file_sha256

    h = hashlib.sha256(f"{kind}|{ignore}|{file_sha256(final)}".encode())
    for p in snapshots:
        h.update(f"|{p.name}:{file_sha256(p)}".encode())
    return h.hexdigest()[:16]


def trajectory_pca(run_dir: str | os.PathLike, kind: str = "weights", ignore: str = "biasbn",
                   epochs: Sequence[int] | None = None) -> Trajectory:
    """PCA of ``run_dir``'s snapshots relative to its final ``model.pt`` (``epochs``: a subset)."""
    from .checkpoint import load_checkpoint
    from .params import weight_tensors

    run_dir = Path(run_dir)
    final_path = _final_path(run_dir)
    files = snapshot_files(run_dir)
    if epochs is not None:
        wanted = {int(e) for e in epochs}
        files = [(e, p) for e, p in files if e in wanted]
    final_ck = load_checkpoint(final_path)
    final = {k: t.detach().clone() for k, t in weight_tensors(final_ck.model, kind).items()}
    snaps = []
    for _, p in files:
        ck = load_checkpoint(p)
        snaps.append({k: t.detach().clone() for k, t in weight_tensors(ck.model, kind).items()})
    directions, ratio, coords, svals = pca_directions(snaps, final, ignore)
    return Trajectory(directions=directions, explained_variance=ratio, coords=coords,
                      epochs=[e for e, _ in files], singular_values=svals, kind=kind, ignore=ignore,
                      final_epoch=final_ck.meta.get("epoch"), run_dir=str(run_dir),
                      source=_source_fingerprint(final_path, [p for _, p in files], kind, ignore),
                      attrs={"checkpoint": str(final_path), "checkpoint_sha256": final_ck.sha256})


def save_trajectory(path: str | os.PathLike, trajectory: Trajectory) -> Path:
    """A direction file (``xdirection``/``ydirection``) with the PCA facts in its attributes."""
    from .directions import save_directions

    return save_directions(path, trajectory.directions, trajectory.file_attrs())


def _json_list(attrs: Mapping, key: str) -> list:
    value = attrs.get(key)
    if value is None:
        raise LandscapeError(f"the direction file has no {key!r} attribute: it was not written by save_trajectory")
    return json.loads(value) if isinstance(value, (str, bytes)) else list(np.asarray(value).ravel())


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read back a file written by `save_trajectory`."""
    from .directions import load_directions

    directions, attrs = load_directions(path)
    if attrs.get("method") != "pca" or len(directions) != 2:
        raise LandscapeError(f"{path} is not a trajectory direction file (no PCA attributes); "
                             "make one with landscape plot --trajectory RUN_DIR")
    xs, ys = _json_list(attrs, "trajectory_x"), _json_list(attrs, "trajectory_y")
    final_epoch = attrs.get("final_epoch")
    known = {"method", "kind", "ignore", "norm", "explained_variance", "singular_values", "trajectory_x",
             "trajectory_y", "epochs", "final_epoch", "run_dir", "source", "n_snapshots"}
    return Trajectory(directions=directions, explained_variance=np.asarray(_json_list(attrs, "explained_variance")),
                      coords=np.column_stack([xs, ys]), epochs=[int(e) for e in _json_list(attrs, "epochs")],
                      singular_values=np.asarray(_json_list(attrs, "singular_values")),
                      kind=str(attrs.get("kind", "weights")), ignore=str(attrs.get("ignore", "biasbn")),
                      final_epoch=None if final_epoch in (None, "none") else float(final_epoch),
                      run_dir=None if attrs.get("run_dir") in (None, "none") else str(attrs["run_dir"]),
                      source=str(attrs.get("source", "")),
                      attrs={k: v for k, v in attrs.items() if k not in known})


# --------------------------------------------------------------------------- surface job
def trajectory_grid(coords: np.ndarray, points: int = 51, margin: float = 0.2,
                    min_aspect: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A grid that holds the whole path and the origin, with ``margin`` of the larger span around it.

    Both axes are in the same units (unit directions), so the shorter axis is widened to at
    least ``min_aspect`` times the longer one: a thin strip would hide the basin around the path.
    """
    pts = np.vstack([np.asarray(coords, dtype=np.float64).reshape(-1, 2), np.zeros((1, 2))])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = float(np.max(hi - lo))
    if not span > 0:
        raise LandscapeError("the path has no extent to put a grid around")
    lo, hi = lo - margin * span, hi + margin * span
    widest = float(np.max(hi - lo))
    for a in range(2):
        width = hi[a] - lo[a]
        if width < min_aspect * widest:
            mid, half = 0.5 * (lo[a] + hi[a]), 0.5 * min_aspect * widest
            lo[a], hi[a] = mid - half, mid + half
    points = max(int(points), 2)
    return np.linspace(lo[0], hi[0], points), np.linspace(lo[1], hi[1], points)


def widen_grid(x: np.ndarray, y: np.ndarray, xs: np.ndarray, ys: np.ndarray,
               margin: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, widened (same number of points) to hold the path with ``margin`` if it leaves them.

    A path drawn over a grid that does not reach it shows nothing of the landscape it crossed,
    so the grid grows and a `TrajectoryGridWarning` says by how much.
    """
    import warnings

    out = []
    for name, axis, path in (("x", x, np.asarray(xs)), ("y", y, np.asarray(ys))):
        lo, hi = float(axis.min()), float(axis.max())
        p_lo, p_hi = float(path.min()), float(path.max())
        if p_lo >= lo and p_hi <= hi:
            out.append(axis)
            continue
        pad = margin * max(p_hi - p_lo, hi - lo)
        new_lo, new_hi = min(lo, p_lo - pad), max(hi, p_hi + pad)
        warnings.warn(f"the training path reaches {name} in [{p_lo:.3g}, {p_hi:.3g}], outside the grid's "
                      f"[{lo:.3g}, {hi:.3g}]; widened the grid to [{new_lo:.3g}, {new_hi:.3g}] ({len(axis)} points); "
                      f"leave out --x/--y to fit the grid to the path", TrajectoryGridWarning, stacklevel=3)
        out.append(np.linspace(new_lo, new_hi, len(axis)))
    return out[0], out[1]


def _write_or_reuse(dir_path: Path, run_dir: Path, final: Path, kind: str, ignore: str) -> None:
    """Compute and save the PCA unless ``dir_path`` already holds it for these very snapshot files."""
    files = snapshot_files(run_dir)
    source = _source_fingerprint(final, [p for _, p in files], kind, ignore)
    try:
        fresh = dir_path.exists() and load_trajectory(dir_path).source == source
    except LandscapeError:
        fresh = False
    if not fresh:
        save_trajectory(dir_path, trajectory_pca(run_dir, kind=kind, ignore=ignore))


def prepare_trajectory_job(job: Any, run_dir: str | os.PathLike, *, auto_grid: bool | None = None,
                           margin: float = 0.2) -> Any:
    """The `SurfaceJob` for a trajectory plot: PCA directions of ``run_dir`` around its final model.

    Writes (or reuses, if the snapshots are unchanged) ``job.out/trajectory_directions.h5`` and
    returns a copy of ``job`` with ``dir_file`` set to it and ``ckpt`` set to
    ``RUN_DIR/model.pt``. With ``auto_grid`` (default: when ``job.y`` is None) the grid covers the
    projected path with ``margin``, using ``len(job.x)`` points per axis.
    """
    from .workflow import SurfaceJob

    if not isinstance(job, SurfaceJob):
        raise LandscapeError(f"prepare_trajectory_job takes a SurfaceJob, got {type(job).__name__}")
    run_dir = Path(run_dir)
    final = _final_path(run_dir) if run_dir.is_dir() else None
    if final is None:
        raise LandscapeError(f"run directory {str(run_dir)!r} does not exist")
    if job.ckpt and Path(job.ckpt).resolve() != final.resolve():
        raise LandscapeError(f"--ckpt {job.ckpt} is not {final}: a trajectory is drawn around its run's final "
                             "model; leave --ckpt out")
    if job.ckpt2 or job.ckpt3:
        raise LandscapeError("--trajectory takes its directions from the run's snapshots; drop --ckpt2/--ckpt3")
    if job.dir_file:
        raise LandscapeError("--trajectory makes its own direction file; drop --dir-file")
    kind = job.kind or "weights"
    dir_path = Path(job.out) / DIRECTION_FILE
    from .parallel import get_comm, on_root

    comm = get_comm()
    # one process decides and writes; under MPI the others wait, then read the file
    on_root(comm, lambda: _write_or_reuse(dir_path, run_dir, final, kind, job.ignore))
    trajectory = load_trajectory(dir_path)
    if auto_grid is None:
        auto_grid = job.y is None
    x, y = job.x, job.y
    if auto_grid:
        px, py, _ = trajectory.path()
        x, y = trajectory_grid(np.column_stack([px, py]), margin=margin,
                               points=len(job.x) if job.x is not None and len(job.x) > 1 else 51)
    elif y is None:
        raise LandscapeError("a trajectory is drawn on a 2D surface: give both --x and --y, or neither (the grid "
                             "then covers the path)")
    else:
        px, py, _ = trajectory.path()
        x, y = widen_grid(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), px, py, margin=margin)
    return dataclasses.replace(job, ckpt=str(final), dir_file=str(dir_path), kind=kind, x=np.asarray(x),
                               y=np.asarray(y))


# --------------------------------------------------------------------------- drawing
def draw_trajectory(surface: Any, trajectory: Trajectory | str | os.PathLike, out: str | os.PathLike | None = None,
                    *, ax: Any = None, quantity: str = "train_loss", log: bool = False, vmax: float | None = None,
                    levels: int | Sequence[float] | None = None, title: str | None = None,
                    formats: Sequence[str] = ("png",), dpi: int = 150) -> Any:
    """The projected path, labelled with epochs, over the contours of ``quantity`` on ``surface``.

    The axes name the principal components and the share of variance each explains. Returns the
    axes; with ``out`` (a path without extension) the figure is saved instead and the written
    paths are returned.
    """
    from .plot import plot_trajectory, save_figure
    from .plot.canvas import new_figure
    from .plot.labels import describe_surface

    if isinstance(surface, (str, os.PathLike)):
        from .surface import load_surface

        surface = load_surface(surface)
    if isinstance(trajectory, (str, os.PathLike)):
        trajectory = load_trajectory(trajectory)
    if surface.y is None:
        raise LandscapeError("a trajectory is drawn over a 2D surface; this one is 1D")
    if quantity not in surface.arrays:
        raise LandscapeError(f"the surface has no {quantity!r}; it has {', '.join(sorted(surface.arrays))}")
    xs, ys, labels = trajectory.path()
    if title is None:
        head = describe_surface(surface.attrs).title.split("\n")[0]
        what = (f"{quantity.replace('_', ' ')} around the final model; path: {len(trajectory.epochs)} snapshots "
                "(numbers: epochs)")
        title = f"{head}\n{what}" if head else what
    if ax is None:
        sx, sy = float(np.ptp(surface.x)), float(np.ptp(surface.y))
        aspect = sy / sx if sx > 0 and 0.25 <= sy / sx <= 4 else 0.8
        ax = new_figure((5.6, float(np.clip(4.6 * aspect, 2.4, 7.0)) + 1.2), pyplot=out is None).add_subplot()
    plot_trajectory(xs, ys, x=surface.x, y=surface.y, values=surface[quantity],
                    explained_variance=trajectory.explained_variance, ax=ax, label_every=1,
                    point_labels=_sparse_labels(xs, ys, labels, surface.x, surface.y), log=log, vmax=vmax,
                    levels=levels, title=title)
    if out is not None:
        return save_figure(ax.figure, out, formats, dpi)
    return ax


def _sparse_labels(xs: np.ndarray, ys: np.ndarray, labels: Sequence[Any], gx: np.ndarray, gy: np.ndarray,
                   spacing: float = 0.06) -> list[str]:
    """Epoch labels, blank where a point sits closer than ``spacing`` (of the grid) to the last one shown.

    Late epochs crowd near the minimum; overlapping numbers help nobody. The start and the end are
    always labelled, and a point too close to the end gives way to it.
    """
    gap = spacing * (np.hypot(float(np.ptp(gx)), float(np.ptp(gy))) or 1.0)
    n = len(xs)
    out, last = [], None
    for k in range(n):
        near_end = 0 < k < n - 1 and np.hypot(xs[k] - xs[-1], ys[k] - ys[-1]) < gap
        if k == n - 1 or (not near_end and (last is None or np.hypot(xs[k] - last[0], ys[k] - last[1]) >= gap)):
            out.append(str(labels[k]))
            last = (xs[k], ys[k])
        else:
            out.append("")
    return out
