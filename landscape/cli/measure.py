"""Options and loading shared by the measuring commands (``landscape hessian``, ``landscape sharpness``).

Their results go to a `landscape.store.MeasureStore` (reused part by part on a rerun).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import (add_checkpoint_args, add_data_args, check_input_file, check_output_dir, default_out_dir, positive_int,
                     require_device, seed)


def add_measure_data_args(p: argparse.ArgumentParser) -> None:
    """Checkpoint, data and output options shared with ``landscape sharpness``."""
    add_checkpoint_args(p)
    add_data_args(p)
    p.add_argument("--split", default="train", choices=["train", "test"], help="which split to measure on")
    p.add_argument("--samples", type=positive_int, default=None, help="use a fixed random subset of N samples")
    p.add_argument("--subset-seed", type=seed, default=0, help="seed of the --samples subset")
    p.add_argument("--params", nargs="+", default=None,
                   help="restrict to these parameters or module prefixes (one layer or block), e.g. classifier")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random probes / start vectors")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision of the model while measuring (float64: exact enough at near-zero loss, slower)")
    add_data_on_arg(p)
    p.add_argument("--out", default=None, help="output directory (default: out/<checkpoint name>; for "
                   "RUN/model.pt, out/RUN)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_data_on_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-on", default="auto", choices=["auto", "device", "stream"],
                   help="keep the data on the device (fast), stream it batch by batch (flat memory), or auto: "
                        "on the device when it fits (a quarter of free GPU memory, 2 GiB on a CPU)")


def load_measure_inputs(args: argparse.Namespace):
    """(checkpoint, data, description of the data) from the shared options.

    The data is what the measurements take: tensors for built-in data, a user factory's Dataset or
    DataLoader unread (`landscape.data.UserData`; its --samples subset a `Subset`), so nothing but
    a head is read before the measurement streams it.
    """
    import torch

    from ..checkpoint import load_checkpoint, require_finite
    from ..batches import take
    from ..data import UserData, get_dataset, subset_indices

    require_device(args.device)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = require_finite(load_checkpoint(args.ckpt, model=args.model, model_args=args.model_args,
                                          map_location=device))
    from ..imports import default_loss

    args.loss = default_loss(args.loss, ckpt.meta)
    if args.dtype == "float64":
        ckpt.model.double()  # inputs follow the parameters' dtype in every measurement
    name = ckpt.dataset_name(args.dataset)
    full = get_dataset(name, args.split, args.data_root, lazy=True)
    idx = subset_indices(len(full), args.samples, args.subset_seed)
    data = take(full.source, idx) if isinstance(full, UserData) else \
        (full.inputs, full.targets) if idx is None else (full.inputs[idx], full.targets[idx])
    info = {"checkpoint": str(args.ckpt), "checkpoint_sha256": ckpt.sha256, "dataset": name, "split": args.split,
            "samples": len(full) if idx is None else len(idx),
            "subset_seed": args.subset_seed if idx is not None else None, "device": device, "dtype": args.dtype,
            **({"data_fingerprint": full.fingerprint} if isinstance(full, UserData) else {})}
    return ckpt, data, info


def output_dir(args: argparse.Namespace, result: str | None = None) -> Path:
    """--out (default `common.default_out_dir`), checked writable before any work when ``result`` names its file."""
    path = Path(args.out) if args.out else default_out_dir(args.ckpt)
    if result is None:
        return path
    check_input_file(args.ckpt, "--ckpt")
    return check_output_dir(path, files=(result,))
