"""``landscape sweep``: train a grid of batch sizes x weight decays x seeds (x learning rates)."""
from __future__ import annotations

import argparse

from .common import (MODEL_HELP, add_dataset_arg, add_loss_arg, add_model_arg, check_output_dir, comma_list,
                     device, fraction, non_negative_float, non_negative_int, positive_float, positive_int,
                     require_device, seed)

HELP = "train a grid of batch sizes x weight decays x seeds (x learning rates); resumable, MPI-parallel"
DESCRIPTION = (HELP + ". Each run goes to OUT/<name>/ with model.pt, history.json and record.json "
               "(written last). Rerun the same command to resume; launch with mpirun -n N to spread runs "
               "over N ranks.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="runs directory (one subdirectory per run)")
    add_model_arg(p, "convnet", MODEL_HELP + " (input shape and class count come from the data when it takes them)")
    add_dataset_arg(p, "digits")
    p.add_argument("--data-root", default=None, help="directory holding CIFAR / MNIST files")
    p.add_argument("--batch-sizes", type=comma_list(positive_int, "batch sizes"), default=[32, 128, 512])
    p.add_argument("--weight-decays", type=comma_list(non_negative_float, "weight decays"), default=[0.0, 5e-4])
    p.add_argument("--seeds", type=comma_list(seed, "seeds"), default=[0, 1, 2])
    p.add_argument("--lrs", type=comma_list(positive_float, "learning rates"), default=[0.1],
                   help="base learning rates (several for tuning, as in steps-to-result studies)")
    p.add_argument("--lr-scaling", choices=["none", "linear", "sqrt"], default="none",
                   help="scale each base lr from --base-batch-size to the run's batch size")
    p.add_argument("--base-batch-size", type=positive_int, default=128)
    p.add_argument("--budget", choices=["epochs", "steps"], default="epochs",
                   help="same epochs for every batch size, or same optimizer steps (Hoffer et al.)")
    p.add_argument("--epochs", type=positive_float, default=20,
                   help="epochs per run (with --budget steps: epochs at the base batch size)")
    p.add_argument("--steps", type=positive_int, default=None, help="with --budget steps: steps per run")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--momentum", type=non_negative_float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--schedule", choices=["constant", "step", "cosine", "linear"], default="constant")
    p.add_argument("--warmup-steps", type=non_negative_int, default=0)
    p.add_argument("--target-error", type=fraction, default=None,
                   help="test error whose first crossing (step and wall-clock) each run records")
    p.add_argument("--snapshot-every", type=positive_int, default=None, help="snapshot every N epochs")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="steps between test evaluations (default: an epoch or 1/100 of the run, coarser in short "
                        "runs where evaluating the test set that often would cost more than training: at most "
                        "2 test samples per trained sample, at least 10 evaluations)")
    add_loss_arg(p, "crossentropy")
    p.add_argument("--device", type=device, default=None, help="cpu, cuda (under MPI: one GPU per local rank)")
    p.add_argument("--dry-run", action="store_true", help="list the planned runs and which are done, then exit")
    p.add_argument("--no-progress", action="store_true")


def _group(group: dict) -> str:
    return " ".join(f"{k.replace('weight_decay', 'wd')}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                    for k, v in group.items())


def run(args: argparse.Namespace) -> int:
    from .. import parallel
    from ..data import get_dataset
    from ..steps_to_result import classify_regimes, steps_to_result
    from ..sweep import pending_runs, plan_sweep, run_sweep

    check_output_dir(args.out, create=not args.dry_run)
    require_device(args.device)
    train_data = get_dataset(args.dataset, "train", args.data_root, lazy=True)
    n_test = len(get_dataset(args.dataset, "test", args.data_root, lazy=True))  # sizes --eval-every
    configs = plan_sweep(
        model=args.model, dataset=args.dataset, n_train=len(train_data), batch_sizes=args.batch_sizes,
        weight_decays=args.weight_decays, seeds=args.seeds, lrs=args.lrs, lr_scaling=args.lr_scaling,
        base_batch_size=args.base_batch_size, budget=args.budget,
        epochs=None if args.steps is not None else args.epochs, steps=args.steps, optimizer=args.optimizer,
        momentum=args.momentum, nesterov=args.nesterov, schedule=args.schedule, warmup_steps=args.warmup_steps,
        target_error=args.target_error, snapshot_every=args.snapshot_every, eval_every=args.eval_every,
        loss=args.loss, model_args=args.model_args, n_test=n_test)
    comm = parallel.get_comm()
    rank = parallel.rank_of(comm)
    if args.dry_run:
        if rank == 0:
            todo = {c.name for c in pending_runs(args.out, configs)} if __import__("os").path.isdir(args.out) \
                else {c.name for c in configs}
            for c in configs:
                print(f"{'todo' if c.name in todo else 'done'}  {c.name}  lr={c.lr:.4g} steps={c.steps} "
                      f"eval_every={c.eval_every}")
            print(f"{len(configs)} runs, {len(todo)} to do")
        return 0
    result = run_sweep(args.out, configs, data_root=args.data_root, device=args.device,
                       progress=not args.no_progress, comm=comm)
    if rank != 0:
        return 0
    print(f"sweep {args.out}: {len(result.ran)} runs trained, {len(result.skipped)} already finished")
    print(f"{'run':<36} {'status':>9} {'train err':>9} {'test err':>9} {'steps':>6} {'to target':>9}")
    for r in sorted(result.records, key=lambda r: r["name"]):
        f = r["final"]
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"{r['name']:<36} {r['status']:>9} {fmt(f['train_error']):>9} {fmt(f['test_error']):>9} "
              f"{f['step']:>6} {r['steps_to_target'] if r['steps_to_target'] is not None else '-':>9}")
    if args.target_error is not None:
        str_table = steps_to_result(result.records, args.target_error)
        print(f"steps to result (test error < {args.target_error}, best over learning rates, median over seeds):")
        for row in str_table:
            steps = "not reached" if row.steps is None else f"{row.steps:g} steps, {row.time:.2f}s (lr {row.lr:g})"
            print(f"  {_group(row.group)} batch {row.batch_size:>6}: {steps}")
        for group in {repr(r.group): r.group for r in str_table}.values():
            reached = [r for r in str_table if r.group == group and r.reached]
            if len(reached) >= 2:
                segments = classify_regimes([r.batch_size for r in reached], [r.steps for r in reached])
                print(f"  {_group(group)} regimes: " + "; ".join(f"{a:g}->{b:g}: slope {s:.2f} ({name})"
                                                for a, b, s, name in segments))
    return 0
