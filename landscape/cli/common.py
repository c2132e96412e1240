"""Argument types and groups shared by several commands (one definition, one spelling).

Every value a user types is checked here, at parse time and before torch is imported: a bad
one is one line naming the flag, what it got and what it takes (exit status 2), never a
traceback an hour into a run. Output locations are checked by `check_output_dir` before any
work starts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

MAX_GRID_COUNT = 100_000  # points along one axis; a surface file holds every point in memory
MAX_SEED = 2**32 - 1  # numpy's legacy RandomState and most seeding schemes take 32-bit seeds


def _parse(text: str, kind: type, noun: str):
    """``text`` as ``kind`` (int or a finite float), else an error naming what was expected."""
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r} (not a finite number)")
    return value


def bounded(kind: type, low: float | None = None, high: float | None = None, *, open_low: bool = False,
            noun: str | None = None) -> Callable[[str], float]:
    """A parser for an ``int`` or finite ``float`` in [low, high] (``(low, high]`` with ``open_low``)."""
    if noun is None:
        base = "an integer" if kind is int else "a finite number"
        if low is not None and high is not None:
            noun = f"{base} from {low:g} to {high:g}"
        elif low is not None:
            noun = f"{base} {'>' if open_low else '>='} {low:g}"
        else:
            noun = base

    def parse(text: str):
        v = _parse(text, kind, noun)
        if (low is not None and (v <= low if open_low else v < low)) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}")
        return v
    parse.__name__ = noun  # argparse names the type in its "invalid ... value" message
    return parse


positive_int = bounded(int, 0, open_low=True, noun="a positive integer")
positive_float = bounded(float, 0, open_low=True, noun="a positive number")
non_negative_int = bounded(int, 0, noun="an integer >= 0")
non_negative_float = bounded(float, 0, noun="a number >= 0")
finite_float = bounded(float)
# GRID x GRID points: at most landscape.surface.MAX_POINTS (10M; not imported here: it pulls in torch)
grid_side = bounded(int, 1, 3162)
fraction = bounded(float, 0, 1, open_low=True, noun="a fraction in (0, 1]")
seed = bounded(int, 0, MAX_SEED, noun=f"a seed from 0 to {MAX_SEED}")
dpi = bounded(float, 10, 1200, noun="a resolution from 10 to 1200 dpi")
threads = bounded(int, 1, 1024, noun="a thread count from 1 to 1024")


def device(text: str) -> str:
    """cpu, cuda, cuda:N or mps (whether it is present is `require_device`'s question, once torch is loaded)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def require_device(name: str | None, flag: str = "--device") -> None:
    """Refuse a device torch does not have, before any work (torch's own answer is a traceback)."""
    from ..errors import LandscapeError

    if name in (None, "cpu"):
        return
    import torch

    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= count:
            have = f"cuda:0 to cuda:{count - 1}" if count else "none"
            raise LandscapeError(f"{flag} {name}: torch sees {count} CUDA device(s) ({have}); use one of those or "
                                 f"{flag} cpu")
    elif name == "mps" and not torch.backends.mps.is_available():
        raise LandscapeError(f"{flag} mps: torch sees no MPS device; use {flag} cpu")


def grid_range(text: str) -> np.ndarray:
    """``a:b:n`` -> n evenly spaced values from a to b inclusive (``-1:1:51``)."""
    try:
        a, b, n = text.split(":")
        a, b = float(a), float(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX:COUNT such as -1:1:51, got {text!r}") from None
    try:
        n = int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"COUNT must be a whole number in {text!r}, such as -1:1:51") from None
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(b - a)):
        raise argparse.ArgumentTypeError(f"MIN and MAX must be finite numbers whose difference is finite, got {text!r}; "
                                         "step sizes near 1 (such as -1:1:51) are what a landscape needs")
    if n < 1:
        raise argparse.ArgumentTypeError(f"COUNT must be at least 1 in {text!r}")
    if n > MAX_GRID_COUNT:
        raise argparse.ArgumentTypeError(f"COUNT must be at most {MAX_GRID_COUNT:,} in {text!r} (every point is a "
                                         "full evaluation of the model)")
    if n > 1 and not b > a:
        raise argparse.ArgumentTypeError(f"MAX must exceed MIN in {text!r}")
    return np.linspace(a, b, n)


def json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"hidden\": [64]}}', got {text!r}")
    return value


def comma_list(parse: Callable[[str], object], what: str) -> Callable[[str], list]:
    """``a,b,c`` -> [parse(a), parse(b), parse(c)]; each item is checked like a single value."""
    def parse_list(text: str) -> list:
        items = [v.strip() for v in text.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        try:
            return [parse(v) for v in items]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"in {text!r}: {e}") from None
    parse_list.__name__ = f"comma-separated {what}"
    return parse_list


def check_input_file(path: str | os.PathLike | None, flag: str) -> None:
    """A file the command reads exists and is a file (checked before the slow imports); None passes."""
    from ..errors import LandscapeError

    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise LandscapeError(f"{flag} {str(p)!r} does not exist")
    if p.is_dir():
        raise LandscapeError(f"{flag} {p} is a directory; give the file inside it")


GENERIC_CHECKPOINT = "model"  # the name train and sweep give every run's checkpoint


def default_out_dir(ckpt: str | os.PathLike) -> Path:
    """``out/<checkpoint name>``; for a run's ``model.pt`` given with its directory, ``out/<run directory>``,
    so that the runs of a sweep (every one a ``model.pt``) do not write over each other's results."""
    path = Path(ckpt)
    run = path.parent.name
    return Path("out") / (run if path.stem == GENERIC_CHECKPOINT and run not in ("", ".", "..") else path.stem)


def check_output_dir(path: str | os.PathLike, flag: str = "--out", *, create: bool = True,
                     files: Iterable[str] = ()) -> Path:
    """Refuse an output directory that cannot take files, before any work starts.

    Catches a path that is a file, one under a file, and a directory that cannot be written
    (read-only file system, permissions): with ``create`` the directory is made and a probe file
    written and removed, which is the only test that holds for root and on every file system;
    without (``--dry-run``), a probe directory is made and removed in the nearest existing one,
    so nothing is left behind. ``files`` are names the command will write there; one that is a
    directory is refused too.
    """
    from ..errors import LandscapeError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise LandscapeError(f"{flag} {p} is a file, not a directory; give a directory (it is created if missing)")
    ancestor = p
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():  # a dangling link: mkdir would fail on it
            raise LandscapeError(f"{flag} {p}: {ancestor} is a broken symbolic link; remove it or pick another {flag}")
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise LandscapeError(f"{flag} {p} lies under {ancestor}, which is a file, not a directory; pick another {flag}")
    for name in files:
        if (p / name).is_dir():
            raise LandscapeError(f"{flag} {p}: {p / name} is a directory where the result file goes; remove it "
                                 f"or pick another {flag}")
    try:
        if create:
            p.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=p, prefix=".landscape-write-test-")
            os.close(fd)
            os.unlink(probe)
        else:  # os.access says yes to root on /sys and the like; making a directory is the test
            os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".landscape-write-test-"))
    except OSError as e:
        raise LandscapeError(f"cannot write to {flag} {p}: {e.strerror or e}; pick a writable directory") from None
    return p


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Refuse an output file that cannot be written (a directory there, no writable parent), before the work."""
    from ..errors import LandscapeError

    p = Path(path)
    if p.is_dir():
        raise LandscapeError(f"{flag} {p} is a directory; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise LandscapeError(f"cannot write to {flag} {p}: permission denied; pick a writable location")
    check_output_dir(p.parent, flag)
    return p


MODEL_HELP = ("registry name, import path pkg.module:factory (a class or function returning an nn.Module), "
              "hf:DIR (a transformers save_pretrained directory) or timm:NAME")
DATA_HELP = ("dataset name or import path pkg.module:factory returning a Dataset, DataLoader, (inputs, targets) "
             "tensors or a {'train': ..., 'test': ...} mapping")
LOSS_HELP = "crossentropy, mse, or an import path pkg.module:fn taking (outputs, targets) to a mean loss"


def add_model_arg(p: argparse.ArgumentParser, default: str | None, help: str = MODEL_HELP) -> None:
    """``--model`` and its JSON ``--model-args``: the one spelling of both for every command."""
    p.add_argument("--model", default=default, help=help)
    p.add_argument("--model-args", type=json_dict, default=None,
                   help="JSON constructor arguments for --model, e.g. '{\"width\": 64}'")


def add_dataset_arg(p: argparse.ArgumentParser, default: str | None, help: str = DATA_HELP) -> None:
    p.add_argument("--dataset", "--data", dest="dataset", default=default, help=help)


def add_loss_arg(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--loss", default=default, help=LOSS_HELP + ("" if default else " (default: the checkpoint's own, "
                                                                "else crossentropy)"))


def add_checkpoint_args(p: argparse.ArgumentParser, multi: bool = False) -> None:
    p.add_argument("--ckpt", required=True, help="checkpoint file (.pt, .t7, .safetensors, bare state_dict)")
    if multi:
        p.add_argument("--ckpt2", help="second checkpoint: x is the line from --ckpt to it")
        p.add_argument("--ckpt3", help="third checkpoint: y spans the plane through the three")
    add_model_arg(p, None, MODEL_HELP + "; needed only when the file does not name its model")


def add_data_args(p: argparse.ArgumentParser) -> None:
    add_dataset_arg(p, None, DATA_HELP + " (default: the checkpoint's own)")
    p.add_argument("--data-root", default=None, help="directory holding CIFAR / MNIST files")
    add_loss_arg(p, None)
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="evaluation batch size (default: the fastest, measured once per model and device)")
    p.add_argument("--device", type=device, default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
