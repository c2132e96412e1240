"""Argument types and groups shared by several commands (one definition, one spelling)."""
from __future__ import annotations

import argparse
import json

import numpy as np


def grid_range(text: str) -> np.ndarray:
    """``a:b:n`` -> n evenly spaced values from a to b inclusive (``-1:1:51``)."""
    try:
        a, b, n = text.split(":")
        a, b, n = float(a), float(b), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX:COUNT such as -1:1:51, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"COUNT must be at least 1 in {text!r}")
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


def _positive(text: str, kind: type, noun: str) -> float:
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {v}")
    return v


def positive_int(text: str) -> int:
    return _positive(text, int, "integer")


def positive_float(text: str) -> float:
    return _positive(text, float, "number")


def non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


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
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
