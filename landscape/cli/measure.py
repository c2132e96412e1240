"""Options and loading shared by the measuring commands (``landscape hessian``, ``landscape sharpness``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_checkpoint_args, add_data_args, positive_int


def add_measure_data_args(p: argparse.ArgumentParser) -> None:
    """Checkpoint, data and output options shared with ``landscape sharpness``."""
    add_checkpoint_args(p)
    add_data_args(p)
    p.add_argument("--split", default="train", choices=["train", "test"], help="which split to measure on")
    p.add_argument("--samples", type=positive_int, default=None, help="use a fixed random subset of N samples")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the --samples subset")
    p.add_argument("--params", nargs="+", default=None,
                   help="restrict to these parameters or module prefixes (one layer or block), e.g. classifier")
    p.add_argument("--seed", type=int, default=0, help="seed of the random probes / start vectors")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision of the model while measuring (float64: exact enough at near-zero loss, slower)")
    p.add_argument("--out", default=None, help="output directory (default: out/<checkpoint name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def load_measure_inputs(args: argparse.Namespace):
    """(checkpoint, (inputs, targets), description of the data) from the shared options."""
    import torch

    from ..checkpoint import load_checkpoint
    from ..data import get_dataset, subset_indices

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = load_checkpoint(args.ckpt, model=args.model, model_args=args.model_args, map_location=device)
    from ..imports import default_loss

    args.loss = default_loss(args.loss, ckpt.meta)
    if args.dtype == "float64":
        ckpt.model.double()  # inputs follow the parameters' dtype in every measurement
    name = ckpt.dataset_name(args.dataset)
    data = get_dataset(name, args.split, args.data_root)
    x, y = data.inputs, data.targets
    idx = subset_indices(len(x), args.samples, args.subset_seed)
    if idx is not None:
        x, y = x[idx], y[idx]
    info = {"checkpoint": str(args.ckpt), "checkpoint_sha256": ckpt.sha256, "dataset": name, "split": args.split,
            "samples": len(x), "subset_seed": args.subset_seed if idx is not None else None, "device": device,
            "dtype": args.dtype}
    return ckpt, (x, y), info


def output_dir(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else Path("out") / Path(args.ckpt).stem


def _plain(value):
    """What ``value`` reads back as from JSON, so requests and settings compare like for like."""
    from ..jsonfile import jsonable

    return json.loads(json.dumps(jsonable(value), sort_keys=True, default=float))


class PartsFile:
    """A measuring command's JSON result, rewritten after every part, reused part by part on a rerun.

    Long measurements (many probes, SLQ runs, PAC-Bayes bisections on a large model) must not be
    lost to a kill: each finished part is written at once. A rerun reuses a part only when the
    file comes from the same checkpoint, data and shared settings (``base``) and the part's own
    request is identical, so reuse never changes a number; anything else is computed again.
    Parts the rerun does not ask for stay in the file while ``base`` matches.
    """

    def __init__(self, path: Path, base: dict, container: str | None = None):
        self.path, self.base, self.container = path, _plain(base), container
        old = self._read()
        if old is not None and {k: old.get(k) for k in self.base} == self.base:
            found = old.get(container, {}) if container else {k: v for k, v in old.items() if k not in self.base}
            self.old = {k: v for k, v in found.items() if isinstance(v, dict)}
        else:
            self.old = {}
        self.parts: dict = dict(self.old)

    def _read(self) -> dict | None:
        try:
            with open(self.path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            return None
        return old if isinstance(old, dict) else None

    def reuse(self, name: str, request: dict) -> dict | None:
        """The stored part ``name`` if it was made by exactly this ``request``, else None."""
        part = self.old.get(name)
        return part if part is not None and part.get("request") == _plain(request) else None

    def put(self, name: str, value: dict, request: dict) -> None:
        self.parts[name] = _plain({**value, "request": request})
        self.write()

    def drop(self, name: str) -> None:
        """Forget a part (a partial one, once the whole part is in)."""
        self.parts.pop(name, None)

    def write(self) -> Path:
        from ..jsonfile import write_json_atomic

        record = dict(self.base)
        if self.container:
            record[self.container] = self.parts
        else:
            record.update(self.parts)
            record["n_hvps_total"] = sum(p.get("n_hvps", 0) for p in self.parts.values())
        return write_json_atomic(self.path, record)
