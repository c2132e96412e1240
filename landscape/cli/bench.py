"""``landscape bench``: time the evaluator (default), Hessian solvers (--hessian) or the shift op."""
from __future__ import annotations

import argparse
import importlib
import json

from .common import (DATA_HELP, add_dataset_arg, add_model_arg, check_output_file, device, grid_side,
                     non_negative_float, positive_int, require_device)

HELP = ("benchmark the surface evaluator (against the older tool's loop: --baseline ll), the Hessian solvers "
        "(--hessian) or the shift kernel (--op shift)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hessian", action="store_true", help="benchmark top-eigenvalue solvers instead of surfaces")
    p.add_argument("--op", choices=["shift"], default=None, help="benchmark a native op instead of surfaces")
    p.add_argument("--baseline", choices=["ll"], default=None,
                   help="time the surface evaluator against a loop in the older loss-landscape tool's style (ll), "
                        "side by side on the digits convnet and a ResNet-20 at CIFAR shape")
    add_model_arg(p, "convnet")
    add_dataset_arg(p, None, DATA_HELP + " (default: digits, or the checkpoint's own with --ckpt)")
    p.add_argument("--ckpt", default=None,
                   help="with --hessian: measure this checkpoint instead of training the default model first")
    p.add_argument("--data-root", default=None)
    p.add_argument("--grid", type=grid_side, default=21, help="grid side: GRID x GRID points")
    p.add_argument("--samples", type=positive_int, default=None, help="samples per point (default: all)")
    p.add_argument("--rtol", type=non_negative_float, default=0.02, help="rtol of the adaptive-precision comparison (0 skips it)")
    p.add_argument("--k", type=positive_int, default=5, help="eigenvalues for --hessian")
    p.add_argument("--shape", default="128,96,32,32", help="N,C,H,W tensor for --op shift")
    p.add_argument("--dtype", default="float32", help="dtype for --op shift")
    p.add_argument("--device", type=device, default=None)
    p.add_argument("--layout", default="auto", choices=["auto", "contiguous", "channels_last"],
                   help="evaluator memory layout for the surface bench (auto: measured)")
    p.add_argument("--fold-bn", default="auto", choices=["auto", "on", "off"],
                   help="BatchNorm folding of the timed surface (landscape surface --fold-bn)")
    p.add_argument("--repeat", type=positive_int, default=5,
                   help="timed repetitions (surface mode: max(1, REPEAT // 2) interleaved sweeps over the grid)")
    p.add_argument("--data-on", default=None, choices=["stream"],
                   help="stream: peak memory of a surface and a top eigenvalue streamed from a memory-mapped "
                        "dataset the bench writes (--stream-gib), and streaming vs resident time per point")
    p.add_argument("--stream-gib", type=float, default=4.0, help="size of the generated dataset for --data-on stream")
    p.add_argument("--stream-fit-gib", type=float, default=0.1,
                   help="size of the dataset that fits, for the streaming vs resident timing")
    p.add_argument("--stream-dir", default=None, help="where --data-on stream writes its files (default: the temp dir)")
    p.add_argument("--json", dest="json_out", default=None,
                   help="also write the JSON result to this new file (an existing one is not overwritten)")


def run(args: argparse.Namespace) -> int:
    from ..errors import LandscapeError

    mode = "hessian" if args.hessian else (args.op or ("baseline" if args.baseline else
                                                       "stream" if args.data_on == "stream" else "surface"))
    if args.ckpt and mode != "hessian":
        raise LandscapeError("--ckpt is only read by bench --hessian; the surface bench builds its own model")
    if not args.ckpt:
        args.dataset = args.dataset or "digits"
    if args.json_out:
        check_output_file(args.json_out, "--json")
        _refuse_existing(args.json_out, "")
    require_device(args.device)
    module = importlib.import_module(f"landscape.bench.{mode}")
    result = module.run(args)  # prints its own readable table
    if not result:  # an MPI rank other than 0: rank 0 reports for all
        return 0
    line = json.dumps(result, sort_keys=True, default=float)
    print(line)
    if args.json_out:  # created while the bench ran: kept too, the result is the line just printed
        from ..filewrite import write_text_atomic

        _refuse_existing(args.json_out, " (the result is the JSON line above)")
        write_text_atomic(args.json_out, line + "\n", then="or copy the JSON line above")
    return 0


def _refuse_existing(path: str, note: str) -> None:
    """A bench result is a measurement of its own moment: one file is never replaced by another."""
    import os

    from ..errors import LandscapeError

    if os.path.lexists(path):
        raise LandscapeError(f"--json {path} already exists{note}; remove it or pick another file name")
