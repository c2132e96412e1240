"""A surface run in a fresh process that stops after its k-th recorded point: SIGKILLed, or paused
until ``DIR/go`` appears (signalling ``DIR/paused``). A fresh interpreter, not ``os.fork``: a fork of
a process holding torch's thread pool or pytest-xdist's threads can deadlock in the child.

    python tests/surface_child.py --stop-after K [--pause DIR] [--stderr FILE] cli SURFACE-ARGS...
    python tests/surface_child.py --stop-after K api OUT.h5     (digits convnet, seed-0 directions)
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path


def _stop_after(k: int, pause: Path | None) -> None:
    from landscape.surface import SurfaceStore

    record, count = SurfaceStore.record, [0]

    def stop(self, p, values):
        record(self, p, values)
        count[0] += 1
        if count[0] == k:
            if pause is None:
                os.kill(os.getpid(), signal.SIGKILL)
            (pause / "paused").touch()
            while not (pause / "go").exists():
                time.sleep(0.02)
    SurfaceStore.record = stop


def _api(out: str) -> int:
    """The resume tests' Python run: their ``convnet`` fixture, seed-0 directions, 200 digits."""
    import numpy as np
    import torch

    import landscape

    torch.manual_seed(0)
    model = landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8))
    dirs = landscape.random_directions(model, n=2, seed=0)
    tr = landscape.get_dataset("digits", "train")
    landscape.compute_surface(model, dirs, (tr.inputs[:200], tr.targets[:200]), np.linspace(-1, 1, 4),
                              np.linspace(-1, 1, 3), out=out, progress=False, flush_seconds=1e9)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stop-after", type=int, required=True)
    parser.add_argument("--pause", type=Path)
    parser.add_argument("--stderr", type=Path)
    parser.add_argument("mode", choices=["cli", "api"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    _stop_after(opts.stop_after, opts.pause)
    with contextlib.ExitStack() as stack:
        if opts.stderr is not None:
            stack.enter_context(contextlib.redirect_stderr(stack.enter_context(open(opts.stderr, "w"))))
        if opts.mode == "api":
            return _api(*opts.args)
        from landscape.cli import main as cli
        return cli(opts.args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
