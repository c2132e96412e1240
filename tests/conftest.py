"""Shared fixtures: tiny models and data so the suite stays fast on 2 cores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# One torch thread per test process, set before torch starts its pool: CI runs two pytest-xdist
# workers on two cores, and two OpenMP threads per worker (plus the CLI subprocesses they start,
# which inherit this) oversubscribe the cores; on a busy machine the spinning threads made a dense
# 628-parameter Hessian take over 600 s instead of 9.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import landscape  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # in case torch was imported before this file

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def digits():
    """(train, test) digits splits."""
    return landscape.get_dataset("digits", "train"), landscape.get_dataset("digits", "test")


@pytest.fixture
def small_digits(digits):
    """200 train and 100 test samples as (inputs, targets) tuples."""
    tr, te = digits
    return (tr.inputs[:200], tr.targets[:200]), (te.inputs[:100], te.targets[:100])


@pytest.fixture
def convnet():
    torch.manual_seed(0)
    return landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(4, 8, 8))


@pytest.fixture(scope="session")
def trained_ckpt(tmp_path_factory, digits):
    """A briefly trained digits convnet saved as a landscape checkpoint (its dataset recorded)."""
    from landscape.train import init_model, train

    tr, te = digits
    out = tmp_path_factory.mktemp("ckpt")
    model = init_model("convnet", tr, seed=0, channels=[4, 8, 8])
    train(model, tr, te, batch_size=64, lr=0.1, epochs=2, seed=0, out_dir=out, dataset="digits", progress=False)
    return out / "model.pt"


def readonly_dir(root: Path) -> Path | None:
    """A directory no file can be created in: permissions for a user; for root, /sys (a kernel file system)."""
    ro = root / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    for place in (ro, Path("/sys")):
        try:
            probe = place / ".landscape-probe"
            probe.mkdir()
            probe.rmdir()
        except OSError:
            return place
    return None


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``landscape ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([sys.executable, "-m", "landscape", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def mpirun_path() -> str | None:
    from shutil import which

    here = os.path.dirname(sys.executable)
    for name in ("mpirun", "mpiexec"):
        candidate = os.path.join(here, name)
        if os.path.exists(candidate):
            return candidate
    return which("mpirun") or which("mpiexec")
