"""A grid of training runs for batch-size studies: batch sizes x weight decays x seeds x learning rates.

Each run trains in its own directory (``RUNS_DIR/<name>/``: ``model.pt``, ``history.json``,
optional snapshots) and writes ``record.json`` *last*, atomically: a run is finished exactly when
its record exists and holds the planned configuration, so a killed sweep resumes by rerunning
the same command (finished runs are skipped, a half-written run is trained again from scratch).

Budgets: ``epochs`` gives every run the same number of epochs (large batches take fewer steps);
``steps`` gives every run the same number of optimizer steps, ``epochs`` worth at the base batch
size (Hoffer et al. 2017, "train longer, generalize better"), unless ``steps`` is given.
Learning rates are scaled from ``base_batch_size`` by ``none``/``linear``/``sqrt``.

Under ``mpirun`` the runs are spread over ranks statically: sorted by cost (samples processed)
and dealt in snake order, so every rank gets a similar load with no messages and no locking;
each run writes only its own files.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import LandscapeError
from .jsonfile import read_json, write_json_atomic
from .schedules import SCALING_RULES, scale_lr

BUDGETS = ("epochs", "steps")
RECORD = "record.json"
EVALS_PER_RUN = 100  # the default resolution of steps-to-target: 1/100 of a run (or one epoch)
EVAL_SHARE = 2  # a default cadence evaluates at most this many test samples per trained sample...
MIN_EVALS = 10  # ...unless that leaves fewer than this many evaluations in the run


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run; equal configs give identical runs on CPU."""

    model: str
    dataset: str
    batch_size: int
    weight_decay: float
    seed: int
    base_lr: float
    lr: float
    steps: int
    steps_per_epoch: int
    budget: str = "epochs"
    lr_scaling: str = "none"
    base_batch_size: int = 128
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "constant"
    warmup_steps: int = 0
    target_error: float | None = None
    snapshot_every: int | None = None
    eval_every: int = 1
    loss: str = "crossentropy"
    model_args: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"bs{self.batch_size}_wd{self.weight_decay:g}_lr{self.base_lr:g}_seed{self.seed}"

    @property
    def cost(self) -> int:
        """Training samples processed: what the wall-clock time scales with."""
        return self.steps * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)


def _as_list(values: Iterable | float | int, what: str) -> list:
    out = list(values) if isinstance(values, Iterable) and not isinstance(values, str) else [values]
    if not out:
        raise LandscapeError(f"the sweep needs at least one {what}")
    if len(set(out)) != len(out):
        raise LandscapeError(f"repeated {what} in {out}")
    return out


def plan_sweep(*, model: str = "convnet", dataset: str = "digits", n_train: int,
               batch_sizes: Sequence[int] = (32, 128, 512), weight_decays: Sequence[float] = (0.0, 5e-4),
               seeds: Sequence[int] = (0, 1, 2), lrs: Sequence[float] = (0.1,), lr_scaling: str = "none",
               base_batch_size: int = 128, budget: str = "epochs", epochs: float | None = 20,
               steps: int | None = None, optimizer: str = "sgd", momentum: float = 0.9, nesterov: bool = False,
               schedule: str = "constant", warmup_steps: int = 0, target_error: float | None = None,
               snapshot_every: int | None = None, eval_every: int | None = None, loss: str = "crossentropy",
               model_args: dict | None = None, n_test: int | None = None) -> list[RunConfig]:
    """The runs of the grid, in a fixed order (lr, batch size, weight decay, seed).

    ``eval_every`` (steps between test evaluations, the resolution of steps-to-target) defaults
    to `default_eval_every`, which needs the test set's size ``n_test`` to bound its cost.
    """
    if budget not in BUDGETS:
        raise LandscapeError(f"unknown budget {budget!r}; use 'epochs' (same epochs for every batch size) "
                             "or 'steps' (same optimizer steps, Hoffer et al.)")
    if lr_scaling not in SCALING_RULES:
        raise LandscapeError(f"unknown lr scaling rule {lr_scaling!r}; use one of {', '.join(SCALING_RULES)}")
    batch_sizes = [int(b) for b in _as_list(batch_sizes, "batch size")]
    weight_decays = [float(w) for w in _as_list(weight_decays, "weight decay")]
    seeds = [int(s) for s in _as_list(seeds, "seed")]
    lrs = [float(v) for v in _as_list(lrs, "learning rate")]
    if any(b <= 0 or b > n_train for b in batch_sizes):
        raise LandscapeError(f"batch sizes must lie in 1..{n_train} (the training set size), got {batch_sizes}")
    if any(w < 0 for w in weight_decays) or any(not v > 0 for v in lrs):
        raise LandscapeError("weight decays must be >= 0 and learning rates > 0")
    if steps is None and not (epochs and epochs > 0):
        raise LandscapeError("give a positive --epochs or --steps budget")
    if budget == "epochs" and steps is not None:
        raise LandscapeError("--steps fixes the same step count for every batch size: use it with --budget steps")
    runs = []
    for lr, bs, wd, seed in itertools.product(lrs, batch_sizes, weight_decays, seeds):
        per_epoch = n_train // bs
        if budget == "epochs":
            total = max(1, round(epochs * per_epoch))
        else:
            total = int(steps) if steps is not None else max(1, round(epochs * (n_train // base_batch_size)))
        if warmup_steps > total:
            raise LandscapeError(f"warmup ({warmup_steps} steps) is longer than the run at batch size {bs} "
                                 f"({total} steps)")
        every = int(eval_every) if eval_every else default_eval_every(total, per_epoch, bs, n_test)
        runs.append(RunConfig(
            model=model, dataset=dataset, batch_size=bs, weight_decay=wd, seed=seed, base_lr=lr,
            lr=scale_lr(lr, bs, base_batch_size, lr_scaling), steps=total, steps_per_epoch=per_epoch,
            budget=budget, lr_scaling=lr_scaling, base_batch_size=int(base_batch_size), optimizer=optimizer,
            momentum=float(momentum), nesterov=bool(nesterov), schedule=schedule, warmup_steps=int(warmup_steps),
            target_error=target_error, snapshot_every=snapshot_every, eval_every=every, loss=loss,
            model_args=dict(model_args or {})))
    return runs


def default_eval_every(steps: int, steps_per_epoch: int, batch_size: int, n_test: int | None = None) -> int:
    """Steps between test evaluations when none is asked: one epoch or 1/`EVALS_PER_RUN` of the run,
    whichever is finer, coarsened in short runs where evaluating the whole test set that often
    would cost more than the training (a 100-step language-model run at batch 16 evaluated its
    1,024 test sequences at every step: 7.6 s of training in 193 s). There the cadence is the
    one at which each evaluation reads at most `EVAL_SHARE` test samples per sample trained since
    the last, but at least `MIN_EVALS` evaluations a run. The last step is always evaluated, and
    the final losses are measured on the full splits whatever the cadence (`train.train`)."""
    every = max(1, min(steps_per_epoch, steps // EVALS_PER_RUN))
    if n_test:
        affordable = -(-n_test // (EVAL_SHARE * batch_size))
        every = max(every, min(affordable, -(-steps // MIN_EVALS)))
    return every


def _same_config(record: dict, config: RunConfig) -> bool:
    import json

    planned = json.loads(json.dumps(config.to_dict()))  # tuples -> lists, as read back from the file
    return record.get("config") == planned


def pending_runs(runs_dir: str | os.PathLike, configs: Sequence[RunConfig]) -> list[RunConfig]:
    """The runs without a finished record; a record from a *different* configuration is an error."""
    runs_dir = Path(runs_dir)
    todo = []
    for cfg in configs:
        record = read_json(runs_dir / cfg.name / RECORD)
        if record is None:
            todo.append(cfg)
        elif not _same_config(record, cfg):
            raise LandscapeError(f"{runs_dir / cfg.name} holds a run with other settings than this sweep's; "
                                 "use a new --out directory (or delete that run) instead of mixing sweeps")
    return todo


def assign_runs(configs: Sequence[RunConfig], rank: int, size: int) -> list[RunConfig]:
    """This rank's share: runs sorted by cost, dealt in snake order (0..size-1, size-1..0, ...)."""
    ordered = sorted(configs, key=lambda c: (-c.cost, c.name))
    mine = []
    for i, cfg in enumerate(ordered):
        lap, pos = divmod(i, size)
        owner = pos if lap % 2 == 0 else size - 1 - pos
        if owner == rank:
            mine.append(cfg)
    return mine


def _curve(history: list[dict]) -> list[dict]:
    keys = ("step", "epoch", "train_time", "test_error", "test_loss", "train_loss")
    return [{k: h.get(k) for k in keys} for h in history]


def train_one(cfg: RunConfig, run_dir: str | os.PathLike, train_data: Any, test_data: Any, *,
              device: str | None = None, progress: bool = False) -> dict:
    """Train one run of the grid into ``run_dir`` and write its record (last, atomically)."""
    from .train import init_model, train

    run_dir = Path(run_dir)
    model = init_model(cfg.model, train_data, seed=cfg.seed, **cfg.model_args)
    result = train(model, train_data, test_data, optimizer=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
                   nesterov=cfg.nesterov, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                   steps=cfg.steps, schedule=cfg.schedule, warmup_steps=cfg.warmup_steps, seed=cfg.seed,
                   snapshot_every=cfg.snapshot_every, out_dir=run_dir, eval_every=cfg.eval_every,
                   target_error=cfg.target_error, progress=progress, loss=cfg.loss, device=device,
                   extra_meta={"base_lr": cfg.base_lr, "lr_scaling": cfg.lr_scaling,
                               "base_batch_size": cfg.base_batch_size, "budget": cfg.budget,
                               "sweep_run": cfg.name})
    m = result.meta
    final = {k: m.get(k) for k in ("train_loss", "train_acc", "train_error", "test_loss", "test_acc",
                                   "test_error", "step", "epoch")}
    record = {"name": cfg.name, "config": cfg.to_dict(), "status": "diverged" if m["diverged"] else "finished",
              "final": final, "steps_to_target": m["steps_to_target"], "time_to_target": m["time_to_target"],
              "epochs_to_target": m["epochs_to_target"], "train_time": m["train_time"],
              "wall_time": m["wall_time"], "device": m["device"], "checkpoint": "model.pt",
              "curve": _curve(result.history)}
    write_json_atomic(run_dir / RECORD, record)
    return record


def load_records(runs_dir: str | os.PathLike) -> list[dict]:
    """Every finished run's record under ``runs_dir`` (its own directory added as ``run_dir``)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise LandscapeError(f"runs directory {str(runs_dir)!r} does not exist; create it with landscape sweep")
    records = []
    for path in sorted(runs_dir.glob(f"*/{RECORD}")):
        record = read_json(path)
        if isinstance(record, dict) and "config" in record:
            record["run_dir"] = str(path.parent)
            records.append(record)
    return records


@dataclass
class SweepResult:
    ran: list[str]
    skipped: list[str]
    records: list[dict]


def run_sweep(runs_dir: str | os.PathLike, configs: Sequence[RunConfig], *, data_root: str | None = None,
              device: str | None = None, progress: bool = True, comm: Any = "auto",
              train_data: Any = None, test_data: Any = None) -> SweepResult:
    """Train every pending run of ``configs`` under ``runs_dir``, spread over MPI ranks if launched so.

    ``train_data``/``test_data`` replace the named dataset (user data from Python); otherwise each
    rank loads ``configs[*].dataset`` once.
    """
    from tqdm.auto import tqdm

    from . import parallel

    runs_dir = Path(runs_dir)
    if comm == "auto":
        comm = parallel.get_comm()
    rank, size = parallel.rank_of(comm), (comm.Get_size() if comm is not None else 1)
    parallel.configure_threads(comm)
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise LandscapeError("two runs of the sweep share a name; the grid has repeated values")
    # Rank 0 decides what is pending (before anyone starts writing) and tells the others.
    plan: Any = None
    if rank == 0:
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            todo = pending_runs(runs_dir, configs)
            write_json_atomic(runs_dir / "sweep.json", {"runs": [c.to_dict() for c in configs], "names": names})
            plan = [c.name for c in todo]
        except LandscapeError as e:
            plan = e
    if comm is not None:
        plan = comm.bcast(plan, root=0)
    if isinstance(plan, LandscapeError):
        raise LandscapeError(str(plan))
    todo_names = set(plan)
    todo = [c for c in configs if c.name in todo_names]
    skipped = [c.name for c in configs if c.name not in todo_names]
    mine = assign_runs(todo, rank, size)

    device = parallel.rank_device(comm, device)
    cache: dict[str, tuple[Any, Any]] = {}

    def data_for(cfg: RunConfig) -> tuple[Any, Any]:
        if train_data is not None:
            return train_data, test_data
        if cfg.dataset not in cache:
            from .data import get_dataset

            cache[cfg.dataset] = (get_dataset(cfg.dataset, "train", data_root),
                                  get_dataset(cfg.dataset, "test", data_root))
        return cache[cfg.dataset]

    ran = []
    # One bar (rank 0's own runs); other ranks print a line per finished run so output never interleaves bars.
    bar = tqdm(mine, desc=f"sweep rank 0/{size}" if size > 1 else "sweep", unit="run",
               disable=not progress or rank != 0, dynamic_ncols=True)
    for cfg in bar:
        bar.set_postfix_str(cfg.name)
        tr, te = data_for(cfg)
        record = train_one(cfg, runs_dir / cfg.name, tr, te, device=device, progress=progress and size == 1)
        ran.append(cfg.name)
        if progress:
            err = record["final"]["test_error"]
            line = (f"[rank {rank}] {cfg.name}: test error {err:.4f}" if err is not None else
                    f"[rank {rank}] {cfg.name}: {record['status']}")
            if rank == 0:
                bar.write(line)
            else:
                print(line, flush=True)
    bar.close()
    if comm is not None:
        ran = [n for part in comm.allgather(ran) for n in part]
    return SweepResult(ran=ran, skipped=skipped,
                       records=[r for r in load_records(runs_dir) if r["name"] in set(names)])
