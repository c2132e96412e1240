"""What the figure recipes share: the trained models, the surfaces, the measurements and the output.

Recipes never train or evaluate on their own. They ask the context for the study's checkpoints
(one `landscape.sweep` grid, trained once into the cache and reused by every recipe), for
surfaces (`landscape.workflow` jobs, resumable h5 files in the cache) and for measurements
(cached by checkpoint sha256 and settings in ``measures.json``). So a second ``landscape figures``
run only redraws, an interrupted one picks up where it stopped, and asking for one figure trains
only what that figure needs.

Under ``mpirun`` the sweeps and surfaces are shared among the ranks (they are MPI-aware);
measurements and drawing happen on rank 0 only.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import LandscapeError
from .scales import Scale


def study_plan(scale: Scale, n_train: int) -> list:
    """The study's runs (`landscape.sweep.RunConfig`): batch sizes x weight decays x seeds, same epochs."""
    from ..sweep import plan_sweep

    s = scale.study
    return plan_sweep(model=s.model, dataset=s.dataset, n_train=n_train, batch_sizes=s.batch_sizes,
                      weight_decays=s.weight_decays, seeds=s.seeds, lrs=(s.lr,), budget="epochs", epochs=s.epochs,
                      momentum=s.momentum, schedule=s.schedule, snapshot_every=s.snapshot_every,
                      model_args=s.model_args)


def scaling_plan(scale: Scale, n_train: int) -> list:
    """The steps-to-result runs: batch sizes x learning rates x seeds, the same step budget for all."""
    from ..sweep import plan_sweep

    s = scale.scaling
    return plan_sweep(model=s.model, dataset=s.dataset, n_train=n_train, batch_sizes=s.batch_sizes,
                      weight_decays=(0.0,), seeds=s.seeds, lrs=s.lrs, budget="steps", steps=s.steps, epochs=None,
                      momentum=s.momentum, schedule=s.schedule, target_error=s.target_error,
                      eval_every=s.eval_every, model_args=s.model_args)


class FigureContext:
    """Shared state of one ``landscape figures`` run (one scale, one output and cache directory)."""

    def __init__(self, scale: Scale, out: str | os.PathLike = "figures", cache: str | os.PathLike | None = None, *,
                 data_root: str | None = None, device: str | None = None, progress: bool = True,
                 formats: Sequence[str] = ("png",), threads: int | None = None, comm: Any = "auto"):
        from .. import parallel

        self.scale = scale
        self.out = Path(out)
        self.cache = Path(cache) if cache is not None else Path("runs") / f"figures-{scale.name}"
        self.data_root = data_root
        self.progress = progress
        self.formats = tuple(formats)
        self.comm = parallel.get_comm() if comm == "auto" else comm
        self.rank = parallel.rank_of(self.comm)
        self.threads = threads if threads is not None else scale.threads
        parallel.configure_threads(self.comm, self.threads)
        self.device = parallel.rank_device(self.comm, device)
        self._study: dict[tuple, dict] | None = None
        self._scaling: list[dict] | None = None
        self._data: dict[tuple[str, str], Any] = {}
        self._measures_path = self.cache / "measures.json"
        self._measures: dict | None = None

    # ------------------------------------------------------------------ basics
    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def log(self, message: str, always: bool = False) -> None:
        """Print on rank 0: progress lines only with ``progress``, results (``always``) in any case."""
        if self.is_root and (self.progress or always):
            print(message, flush=True)

    def data(self, split: str, dataset: str | None = None) -> Any:
        """A split of the study's dataset (or ``dataset``), loaded once."""
        from ..data import get_dataset

        name = dataset or self.scale.study.dataset
        if (name, split) not in self._data:
            self._data[(name, split)] = get_dataset(name, split, self.data_root)
        return self._data[(name, split)]

    def measure_data(self) -> Any:
        """The training data the sharpness and Hessian measures use (a fixed subset at paper scale)."""
        from ..data import subset_indices

        train = self.data("train")
        idx = subset_indices(len(train), self.scale.measure_samples, seed=0)
        return train if idx is None else (train.inputs[idx], train.targets[idx])

    # ------------------------------------------------------------------ training
    def _sweep(self, subdir: str, configs: list) -> list[dict]:
        from ..sweep import run_sweep

        result = run_sweep(self.cache / subdir, configs, data_root=self.data_root, device=self.device,
                           progress=self.progress, comm=self.comm)
        diverged = [r["name"] for r in result.records if r["status"] != "finished"]
        if diverged and self.is_root:
            self.log(f"  note: {len(diverged)} run(s) of {subdir} diverged: {', '.join(diverged[:4])}")
        return result.records

    def study_records(self) -> dict[tuple[int, float, int], dict]:
        """The study's sweep records keyed by ``(batch_size, weight_decay, seed)``, training what is missing."""
        if self._study is None:
            s = self.scale.study
            self.log(f"study: {s.model} on {s.dataset}, batch sizes {list(s.batch_sizes)} x weight decays "
                     f"{list(s.weight_decays)} x seeds {list(s.seeds)}, {s.epochs:g} epochs (cache: {self.cache})")
            records = self._sweep("study", study_plan(self.scale, len(self.data("train"))))
            self._study = {(r["config"]["batch_size"], r["config"]["weight_decay"], r["config"]["seed"]): r
                           for r in records}
        return self._study

    def study_run(self, batch_size: int, weight_decay: float, seed: int | None = None) -> dict:
        """One study run's record (``run_dir`` included); the first seed unless ``seed`` is given."""
        records = self.study_records()
        seed = self.scale.study.seeds[0] if seed is None else seed
        key = (int(batch_size), float(weight_decay), int(seed))
        if key not in records:
            raise LandscapeError(f"the study has no run with batch size {batch_size}, weight decay {weight_decay:g}, "
                                 f"seed {seed}")
        return records[key]

    def study_checkpoint(self, batch_size: int, weight_decay: float, seed: int | None = None) -> Path:
        return Path(self.study_run(batch_size, weight_decay, seed)["run_dir"]) / "model.pt"

    def scaling_records(self) -> list[dict]:
        """The steps-to-result grid's records (batch sizes x learning rates x seeds), training what is missing."""
        if self._scaling is None:
            s = self.scale.scaling
            self.log(f"steps-to-result grid: {s.model} on {s.dataset}, batch sizes {list(s.batch_sizes)} x "
                     f"learning rates {list(s.lrs)} x seeds {list(s.seeds)}, {s.steps} steps each")
            self._scaling = self._sweep("scaling", scaling_plan(self.scale, len(self.data("train", s.dataset))))
        return self._scaling

    def finished_scaling_runs(self) -> list[dict]:
        """`scaling_records` that ran to the end: the ones steps-to-result and cost figures read."""
        return [r for r in self.scaling_records() if r["status"] == "finished"]

    def tracked_run(self, batch_size: int, seed: int) -> dict:
        """A run of the steps-to-result setting at one lr, measured in the loop (`landscape.track`).

        ``{"run_dir", "track", "history"}``; trained into ``cache/tracked`` once, reused after.
        """
        from ..jsonfile import read_json
        from ..track import TRACK_FILE, Tracker
        from ..train import init_model, train

        s, t = self.scale.scaling, self.scale.tracking
        run_dir = self.cache / "tracked" / f"bs{batch_size}_s{seed}"
        done = read_json(run_dir / "history.json") or {}
        if done.get("status") != "finished" or not (run_dir / TRACK_FILE).exists():
            self.log(f"  tracked run: batch {batch_size}, seed {seed}, lr {t.lr:g}, {t.steps} steps, measured every "
                     f"{t.track_every}")
            for old in run_dir.glob("track*"):
                old.unlink()
            train_data = self.data("train", s.dataset)
            tracker = Tracker(train_data, run_dir, samples=t.samples, n_probes=t.n_probes,
                              run_meta={"lr": t.lr, "momentum": s.momentum, "batch_size": batch_size, "seed": seed,
                                        "dataset": s.dataset, "model": s.model})
            model = init_model(s.model, train_data, seed=seed, **dict(s.model_args))
            train(model, train_data, self.data("test", s.dataset), lr=t.lr, momentum=s.momentum,
                  batch_size=batch_size, steps=t.steps, seed=seed, eval_every=t.track_every,
                  target_error=s.target_error, out_dir=run_dir, dataset=s.dataset, progress=False, device=self.device,
                  on_step=tracker.callback(t.track_every))
        return {"run_dir": run_dir, "track": read_json(run_dir / TRACK_FILE), "history": read_json(run_dir / "history.json")}

    def tuned_scaling_records(self) -> list[dict]:
        """Steps-to-result records at the tracking settings' tuned learning rates, one run per (batch, seed).

        Each run stops at the target (only the first crossing is read), so this costs a fraction of the
        grid; records look like sweep records (``config`` with ``base_lr``, ``curve``) for `steps_to_result`.
        """
        from ..jsonfile import read_json
        from ..train import init_model, train

        s, t = self.scale.scaling, self.scale.tracking
        records = []
        for b, lr in sorted(t.tuned_lrs.items()):
            for seed in t.seeds:
                run_dir = self.cache / "tuned" / f"bs{b}_lr{lr:g}_s{seed}"
                done = read_json(run_dir / "history.json") or {}
                if done.get("status") != "finished":
                    self.log(f"  steps to result: batch {b}, lr {lr:g}, seed {seed}")
                    train_data = self.data("train", s.dataset)
                    model = init_model(s.model, train_data, seed=seed, **dict(s.model_args))
                    train(model, train_data, self.data("test", s.dataset), lr=lr, momentum=s.momentum, batch_size=b,
                          steps=s.steps, seed=seed, eval_every=s.eval_every, target_error=s.target_error,
                          stop_at_target=True, out_dir=run_dir, dataset=s.dataset, progress=False, device=self.device)
                    done = read_json(run_dir / "history.json")
                records.append({"config": {"batch_size": b, "base_lr": lr, "seed": seed}, "curve": done["history"],
                                "status": "finished"})
        return records

    # ------------------------------------------------------------------ surfaces
    def surface_job(self, name: str, ckpt: str | os.PathLike, x: Sequence[float], y: Sequence[float] | None = None,
                    **job: Any) -> Any:
        """The `landscape.workflow.SurfaceJob` for a surface around ``ckpt``, its files under ``cache/surfaces/name``."""
        from ..workflow import SurfaceJob

        return SurfaceJob(ckpt=str(ckpt), x=np.asarray(x, dtype=np.float64),
                          y=None if y is None else np.asarray(y, dtype=np.float64), data_root=self.data_root,
                          samples=self.scale.surface_samples, device=self.device, threads=self.threads,
                          out=str(self.cache / "surfaces" / name), progress=self.progress, **job)

    def surface(self, name: str, ckpt: str | os.PathLike, x: Sequence[float], y: Sequence[float] | None = None,
                **job: Any) -> Any:
        """A surface around ``ckpt``, computed (or resumed) in the cache; see `surface_job`."""
        from ..workflow import run_surface_job

        return run_surface_job(self.surface_job(name, ckpt, x, y, **job))

    # ------------------------------------------------------------------ measurements
    def measure(self, ckpt: str | os.PathLike, name: str, settings: Mapping[str, Any],
                fn: Callable[[Any], Any]) -> Any:
        """``fn(checkpoint)`` (a JSON-able result), cached by the checkpoint's sha256, ``name`` and ``settings``."""
        from ..checkpoint import file_sha256, load_checkpoint
        from ..store import MeasureStore

        if self._measures is None:
            self._measures = MeasureStore(self._measures_path, {"store": "figures"}, container="measures")
        key = f"{file_sha256(ckpt)[:20]}|{name}"
        if self._measures.reuse(key, settings) is None:
            ck = load_checkpoint(ckpt, map_location=self.device)
            start = time.perf_counter()
            value = fn(ck)
            self._measures.put(key, {"value": value, "seconds": time.perf_counter() - start, "checkpoint": str(ckpt)},
                               dict(settings))
        return self._measures.reuse(key, settings)["value"]

    # ------------------------------------------------------------------ output
    def save(self, fig: Any, stem: str, dpi: int = 150) -> list[Path]:
        """Write ``fig`` as ``out/stem.<format>``; PNGs above ``PNG_LIMIT`` bytes get a 256-colour palette."""
        from ..plot import save_figure

        paths = save_figure(fig, self.out / stem, self.formats, dpi=dpi)
        for path in paths:
            if path.suffix == ".png" and path.stat().st_size > PNG_LIMIT:
                shrink_png(path)
        return paths


PNG_LIMIT = 250_000  # committed figures stay small; line art loses nothing visible to a palette


def shrink_png(path: Path) -> Path:
    """Re-save a PNG with an adaptive 256-colour palette (several times smaller for plots)."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path
