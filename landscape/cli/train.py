"""``landscape train``: one training run that writes model.pt (+ snapshots) with full meta."""
from __future__ import annotations

import argparse

from .common import (MODEL_HELP, add_dataset_arg, add_loss_arg, add_model_arg, check_output_dir, comma_list,
                     device, fraction, non_negative_float, non_negative_int, positive_float, positive_int,
                     require_device, seed)

HELP = "train one model (SGD/Adam, batch size, lr, weight decay, schedule, seed) and save checkpoints"
DESCRIPTION = (HELP + ". Writes OUT/model.pt with the run's hyperparameters and final train/test loss and "
               "accuracy in its meta, OUT/history.json, and OUT/snapshots/epoch_XXX.pt with --snapshot-every.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arg(p, "convnet", MODEL_HELP + " (input shape and class count come from the data when it takes them)")
    add_dataset_arg(p, "digits")
    p.add_argument("--data-root", default=None, help="directory holding CIFAR / MNIST files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=positive_float, default=0.1, help="peak learning rate (after scaling)")
    p.add_argument("--lr-scaling", choices=["none", "linear", "sqrt"], default="none",
                   help="scale --lr from --base-batch-size to --batch-size")
    p.add_argument("--base-batch-size", type=positive_int, default=128, help="batch size --lr was tuned at")
    p.add_argument("--momentum", type=non_negative_float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="L2 coefficient added to the gradient")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_float, default=None, help="budget in epochs (default 20)")
    budget.add_argument("--steps", type=positive_int, default=None, help="budget in optimizer steps")
    p.add_argument("--schedule", choices=["constant", "step", "cosine", "linear"], default="constant")
    p.add_argument("--warmup-steps", type=non_negative_int, default=0, help="linear warmup steps")
    p.add_argument("--milestones", type=comma_list(fraction, "fractions such as 0.5,0.75"), default="0.5,0.75", help="step schedule: fractions of the run where lr *= gamma")
    p.add_argument("--gamma", type=positive_float, default=0.1, help="step schedule decay factor")
    p.add_argument("--seed", type=seed, default=0, help="seeds the initialization and the data order")
    p.add_argument("--snapshot-every", type=positive_int, default=None, help="save a snapshot every N epochs")
    p.add_argument("--eval-every", type=positive_int, default=None, help="steps between test evaluations "
                   "(default: one epoch)")
    p.add_argument("--target-error", type=fraction, default=None,
                   help="record the step and time at which test error first falls below this")
    add_loss_arg(p, "crossentropy")
    p.add_argument("--device", type=device, default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--track-every", type=positive_int, default=None, metavar="N",
                   help="every N steps (and at step 0) measure lambda_max, the Hessian trace and the gradient noise "
                        "scale into OUT/track.json, outside the training time (see landscape track)")
    from .track import add_tracking_arguments

    add_tracking_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.out)
    require_device(args.device)
    from .track import tracking_options_given

    given = tracking_options_given(args)
    if given and not args.track_every:
        from ..errors import LandscapeError

        raise LandscapeError(f"{given[0]} applies only with --track-every N; add it (or use landscape track RUN_DIR)")
    import torch

    from ..data import train_test
    from ..schedules import scale_lr
    from ..train import init_model, train

    train_data, test_data = train_test(args.dataset, args.data_root)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = init_model(args.model, train_data, seed=args.seed, **(args.model_args or {}))
    lr = scale_lr(args.lr, args.batch_size, args.base_batch_size, args.lr_scaling)
    epochs = args.epochs if args.epochs is not None or args.steps is not None else 20
    tracker = None
    if args.track_every:
        from pathlib import Path

        from ..track import TRACK_FILE, VECTOR_FILE, Tracker
        from .track import tracker_options

        for old in (TRACK_FILE, VECTOR_FILE):  # a rerun replaces the run, and its track with it
            Path(args.out, old).unlink(missing_ok=True)
        tracker = Tracker(train_data, args.out, run_meta={"lr": lr, "momentum": args.momentum,
                                                          "batch_size": args.batch_size,
                                                          "weight_decay": args.weight_decay, "seed": args.seed,
                                                          "dataset": args.dataset, "model": args.model},
                          loss=args.loss, **tracker_options(args))
    result = train(model, train_data, test_data, optimizer=args.optimizer, lr=lr, momentum=args.momentum,
                   nesterov=args.nesterov, batch_size=args.batch_size, weight_decay=args.weight_decay,
                   epochs=epochs, steps=args.steps, schedule=args.schedule, warmup_steps=args.warmup_steps,
                   milestones=tuple(args.milestones), gamma=args.gamma, seed=args.seed,
                   snapshot_every=args.snapshot_every, out_dir=args.out, eval_every=args.eval_every,
                   target_error=args.target_error, progress=not args.no_progress, loss=args.loss, device=device,
                   extra_meta={"base_lr": args.lr, "lr_scaling": args.lr_scaling,
                               "base_batch_size": args.base_batch_size},
                   on_step=tracker.callback(args.track_every) if tracker is not None else None)
    m = result.meta
    test = f", test loss {m['test_loss']:.4f} acc {m['test_acc']:.4f}" if test_data is not None else " (no test split)"
    print(f"{m['model']} on {m['dataset']}: {m['step']} steps ({m['epoch']:.1f} epochs) in {m['wall_time']:.1f}s; "
          f"train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}{test}" + ("  [DIVERGED]" if m["diverged"] else ""))
    if tracker is not None:
        from ..track import draw_track
        from .track import summary

        print(summary(tracker))
        paths = draw_track(tracker.to_dict(), Path(args.out) / "track")
        print("wrote " + ", ".join(str(p) for p in [Path(args.out) / "track.json", *paths]))
    if m.get("target_error") is not None:
        hit = (f"step {m['steps_to_target']} ({m['time_to_target']:.2f}s)" if m["steps_to_target"] is not None
               else "not reached")
        print(f"test error < {m['target_error']}: {hit}")
    print(f"saved {result.checkpoint}" + (f" and {len(result.snapshots)} snapshots" if result.snapshots else ""))
    return 0
