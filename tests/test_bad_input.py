"""Every bad input is one line and exit status 2, never a traceback: the attack of issue 18, replayed.

Damaged checkpoints, surface files and journals, hostile CLI values and unwritable output paths go
through ``python -m landscape`` as a user would type them. The cases run once, each in a process
of its own forked from one interpreter that imported torch once (tests/cli_forks.py; a test checks
that a forked run and a fresh one say the same), in a module fixture; each parametrized test then checks
its own case: the exit status, no ``Traceback``, one line on stderr that names the problem. Damaged
journal lines are repaired rather than refused: the run goes on (exit 0) with one warning.
Hostile pickles must never execute: their payload would create a marker file.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch

import landscape
from landscape.checkpoint import save_checkpoint, save_safetensors

from conftest import readonly_dir

# All cases run in the first test's setup: about 100 processes forked from one that imported torch.
pytestmark = pytest.mark.timeout(1200)

FAST = ["--samples", "50", "--no-progress", "--threads", "1", "--batch-size", "50", "--layout", "contiguous"]
NAMES = '{"train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0, "test_acc": 0.5}'


@dataclass
class Workspace:
    root: Path
    ckpt: Path  # a tiny digits convnet that names its model and dataset
    st: Path  # the same as safetensors
    s1: Path  # a finished 1D surface (3 points) with its directions, computed from ckpt
    s2: Path  # a finished 2D surface (3 x 3)
    readonly: Path | None  # a directory nobody may write to (None where the machine has none)


@dataclass
class Case:
    id: str
    argv: Callable[[Workspace, Path], list]  # (workspace, this case's own directory) -> CLI arguments
    fragment: str  # what the one line must say
    rc: int = 2  # 0: the input is repaired with a warning (damaged journal lines), not refused


CASES: list[Case] = []


def case(id: str, fragment: str, rc: int = 2):
    def wrap(fn):
        CASES.append(Case(id, fn, fragment, rc))
        return fn
    return wrap


# ------------------------------------------------------------------ building blocks
def surface_argv(ckpt, d: Path, *extra) -> list:
    return ["surface", "--ckpt", ckpt, "--x", "-1:1:3", *FAST, "--out", d / "out", *extra]


def hessian_argv(ckpt, d: Path, *extra) -> list:
    return ["hessian", "--ckpt", ckpt, "--samples", "50", "--k", "1", "--max-iter", "4", "--no-progress",
            "--out", d / "out", *extra]


def sharpness_argv(ckpt, d: Path, *extra) -> list:
    return ["sharpness", "--ckpt", ckpt, "--samples", "50", "--max-iter", "2", "--no-progress", "--out", d / "out",
            *extra]


def raw_checkpoint(ws: Workspace) -> dict:
    return torch.load(ws.ckpt, weights_only=True)


def saved(d: Path, obj, name: str = "c.pt", **kw) -> Path:
    torch.save(obj, d / name, **kw)
    return d / name


def edited(ws: Workspace, d: Path, **fields) -> Path:
    """The workspace checkpoint with some of its top-level fields replaced."""
    return saved(d, {**raw_checkpoint(ws), **fields})


def with_weight(ws: Workspace, d: Path, value: float) -> Path:
    obj = raw_checkpoint(ws)
    obj["state_dict"]["features.0.weight"][0, 0, 0, 0] = value
    return saved(d, obj)


def safetensors_parts(ws: Workspace) -> tuple[dict, bytes]:
    raw = ws.st.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def safetensors_file(d: Path, header, data: bytes, length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = d / "c.safetensors"
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def safetensors_meta(ws: Workspace, d: Path, landscape_entry: str) -> Path:
    header, data = safetensors_parts(ws)
    header["__metadata__"] = {"landscape": landscape_entry}
    return safetensors_file(d, header, data)


class RunsCode:
    """Unpickling this runs ``touch MARKER``: the loader must refuse it before that happens."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def copy_surface(ws: Workspace, d: Path, dim: int = 1) -> Path:
    shutil.copytree(ws.s1 if dim == 1 else ws.s2, d / "out")
    return d / "out" / f"random_{dim}d.h5"


def resume_argv(ws: Workspace, d: Path, dim: int) -> list:
    return surface_argv(ws.ckpt, d, *(["--y", "-1:1:3"] if dim == 2 else []))


def damaged_journal(ws: Workspace, d: Path, lines: list[bytes], dim: int = 1) -> Path:
    """A surface whose point 0 is only in its journal, behind the run's own header, and some damaged lines."""
    h5 = copy_surface(ws, d, dim)
    with h5py.File(h5, "a") as f:
        key = f.attrs["journal_key"]
        f["done"][(0,) * dim] = False
    header = json.dumps({"journal": "landscape-surface-journal", "key": str(key)}).encode()
    Path(f"{h5}.journal").write_bytes(b"\n".join([header, *lines]) + b"\n")
    return h5


def edited_surface(ws: Workspace, d: Path, name: str, value, dim: int = 1) -> Path:
    h5 = copy_surface(ws, d, dim)
    with h5py.File(h5, "a") as f:
        del f[name]
        if value is not None:
            f[name] = value
    return h5


# ------------------------------------------------------------------ checkpoints
@case("safetensors-header-length", "cannot read")
def _(ws, d):
    header, data = safetensors_parts(ws)
    return surface_argv(safetensors_file(d, header, data, length=1 << 60), d)


@case("safetensors-bad-json", "cannot read")
def _(ws, d):
    return surface_argv(safetensors_file(d, b"{not json" + b" " * 16, safetensors_parts(ws)[1]), d)


@case("safetensors-bad-offsets", "cannot read")
def _(ws, d):
    header, data = safetensors_parts(ws)
    header["features.0.weight"]["data_offsets"] = [0, 10**9]
    return surface_argv(safetensors_file(d, header, data), d)


@case("safetensors-holding-a-pickle", "torch.save (pickle) file named .safetensors")
def _(ws, d):
    return surface_argv(saved(d, RunsCode(d / "PWNED"), "c.safetensors"), d)


@case("safetensors-metadata-not-json", "metadata is not JSON")
def _(ws, d):
    return surface_argv(safetensors_meta(ws, d, "{oops"), d)


@case("safetensors-metadata-a-list", "its header is [1, 2]")
def _(ws, d):
    return surface_argv(safetensors_meta(ws, d, "[1, 2]"), d)


@case("empty-file", "cannot read")
def _(ws, d):
    (d / "c.pt").write_bytes(b"")
    return surface_argv(d / "c.pt", d)


@case("dev-null", "cannot read /dev/null")
def _(ws, d):
    return surface_argv("/dev/null", d)


@case("directory-as-checkpoint", "is a directory")
def _(ws, d):
    return hessian_argv(d, d)


@case("meta-a-list", "'meta' is [1, 2]")
def _(ws, d):
    return surface_argv(edited(ws, d, meta=[1, 2]), d)


@case("model-args-a-string", "'model_args' is 'wide'")
def _(ws, d):
    return surface_argv(edited(ws, d, model_args="wide"), d)


@case("model-args-negative-width", "negative dimension")
def _(ws, d):
    return surface_argv(edited(ws, d, model_args={"channels": [-2, 4, 4]}), d)


@case("model-args-zero-width", "every width must be at least 1")
def _(ws, d):
    return surface_argv(edited(ws, d, model_args={"channels": [0, 4, 4]}), d)


@case("state-dict-none", "'state_dict' is None")
def _(ws, d):
    return surface_argv(edited(ws, d, state_dict=None), d)


@case("wrong-shapes", "tensor 'features.0.weight' has shape (3, 3) in the file, (2, 1, 3, 3) in the model")
def _(ws, d):
    obj = raw_checkpoint(ws)
    obj["state_dict"]["features.0.weight"] = torch.zeros(3, 3)
    return hessian_argv(saved(d, obj), d)


@case("nan-weights-surface", "tensor 'features.0.weight' has 1 NaN value(s)")
def _(ws, d):
    return surface_argv(with_weight(ws, d, float("nan")), d)


@case("nan-weights-hessian", "tensor 'features.0.weight' has 1 NaN value(s)")
def _(ws, d):
    return hessian_argv(with_weight(ws, d, float("nan")), d)


@case("inf-weights-sharpness", "tensor 'features.0.weight' has 1 infinite value(s)")
def _(ws, d):
    return sharpness_argv(with_weight(ws, d, float("-inf")), d)


@case("hostile-pickle-pt", "refusing to load")
def _(ws, d):
    return surface_argv(saved(d, RunsCode(d / "PWNED")), d)


@case("hostile-pickle-t7", "refusing to load")
def _(ws, d):
    return surface_argv(saved(d, {"state_dict": {}, "net": RunsCode(d / "PWNED")}, "c.t7"), d)


@case("hostile-pickle-legacy-format", "refusing to load")
def _(ws, d):
    return hessian_argv(saved(d, RunsCode(d / "PWNED"), _use_new_zipfile_serialization=False), d)


@case("hostile-pickle-in-state-dict", "refusing to load")
def _(ws, d):
    return surface_argv(saved(d, {"state_dict": {"w": RunsCode(d / "PWNED")}}), d)


@case("hostile-raw-pickle", "cannot read")
def _(ws, d):
    (d / "c.pt").write_bytes(pickle.dumps(RunsCode(d / "PWNED")))
    return surface_argv(d / "c.pt", d)


# ------------------------------------------------------------------ surface files and journals
JOURNAL_DAMAGE = {
    "binary": b"\x00\xff\xfe\x80 garbage",
    "json-list": b"[1, 2]",
    "lacks-p": ('{"v": ' + NAMES + "}").encode(),
    "index-out-of-range": ('{"p": 99, "v": ' + NAMES + "}").encode(),
    "negative-index": ('{"p": -1, "v": ' + NAMES + "}").encode(),
    "non-numeric-value": b'{"p": 0, "v": {"train_loss": "abc", "train_acc": 0.5, "test_loss": 1, "test_acc": 0.5}}',
    "torn-last-line": b'{"p": 0, "v": {"train_lo',
}
for _name, _line in JOURNAL_DAMAGE.items():
    if _name != "torn-last-line":  # render reads the journal as resume does: one torn case is enough
        CASES.append(Case(f"journal-{_name}-render", lambda ws, d, line=_line: [
            "render", damaged_journal(ws, d, [line]), "--out", d / "figures"], "dropped 1 damaged line(s)", rc=0))
    CASES.append(Case(f"journal-{_name}-resume", lambda ws, d, line=_line: (
        damaged_journal(ws, d, [line]), resume_argv(ws, d, 1))[1], "dropped 1 damaged line(s)", rc=0))

H5_DAMAGE = {  # name -> (dataset, its new value or None to delete it, dim, fragment)
    "without-done": ("done", None, 1, "no 'done' mask"),
    "done-of-wrong-size": ("done", np.ones(7, bool), 1, "'done' should be 3 flags"),
    "string-array": ("train_loss", np.array([b"a", b"b", b"c"]), 1, "'train_loss' is not an array of numbers"),
    "non-finite-coordinates": ("xcoordinates", np.array([np.nan, 0.0, 1.0]), 1, "holds non-finite coordinates"),
    "infinite-grid": ("xcoordinates", np.array([-np.inf, 0.0, np.inf]), 1, "holds non-finite coordinates"),
}
for _name, (_ds, _value, _dim, _fragment) in H5_DAMAGE.items():
    CASES.append(Case(f"h5-{_name}-render", lambda ws, d, ds=_ds, v=_value, dim=_dim: [
        "render", edited_surface(ws, d, ds, v, dim), "--out", d / "figures"], _fragment))
    CASES.append(Case(f"h5-{_name}-resume", lambda ws, d, ds=_ds, v=_value, dim=_dim: (
        edited_surface(ws, d, ds, v, dim), resume_argv(ws, d, dim))[1], _fragment))


@case("h5-fingerprint-keys-not-json-resume", "'fingerprint_keys' attribute is damaged")
def _(ws, d):
    h5 = copy_surface(ws, d)
    with h5py.File(h5, "a") as f:
        f.attrs["fingerprint_keys"] = "{oops"
    return resume_argv(ws, d, 1)


@case("render-a-text-file", "not a readable h5 file")
def _(ws, d):
    (d / "s.h5").write_text("not h5")
    return ["render", d / "s.h5"]


@case("resume-another-grid", "different grid")
def _(ws, d):
    copy_surface(ws, d)
    return ["surface", "--ckpt", ws.ckpt, "--x", "-1:1:5", *FAST, "--out", d / "out"]


@case("resume-another-seed", "was computed with")
def _(ws, d):
    copy_surface(ws, d)
    return surface_argv(ws.ckpt, d, "--seed", "3")


@case("resume-another-checkpoint", "was computed with")
def _(ws, d):
    copy_surface(ws, d)
    other = edited(ws, d, meta={"dataset": "digits", "note": "another file"})
    return surface_argv(other, d)


# ------------------------------------------------------------------ CLI values
def surface_with(*flags) -> Callable:
    return lambda ws, d: surface_argv(ws.ckpt, d, *flags)


def train_with(*flags) -> Callable:
    return lambda ws, d: ["train", "--out", d / "run", "--steps", "2", "--no-progress", *flags]


def render_with(*flags) -> Callable:
    return lambda ws, d: ["render", ws.s2 / "random_2d.h5", "--out", d / "figures", *flags]


VALUES = [  # (id, argv, fragment)
    ("x-overflowing-range", surface_with("--x=-1e308:1e308:5"), "difference is finite"),
    ("x-infinite", surface_with("--x=0:inf:3"), "finite"),
    ("x-count-zero", surface_with("--x=0:1:0"), "COUNT must be at least 1"),
    ("x-count-not-whole", surface_with("--x=0:1:2.5"), "COUNT must be a whole number"),
    ("x-count-huge", surface_with("--x=0:1:100000000"), "COUNT must be at most"),
    ("x-times-y-huge", surface_with("--x=-1:1:100000", "--y=-1:1:100000"), "points; at most"),
    ("seed-negative", surface_with("--seed", "-1"), "expected a seed from 0 to"),
    ("seed-power-expression", surface_with("--seed", "2**70"), "expected a seed"),
    ("seed-2-to-the-70", surface_with("--seed", str(2**70)), "expected a seed from 0 to"),
    ("samples-zero", surface_with("--samples", "0"), "expected a positive integer"),
    ("rtol-nan", surface_with("--rtol", "nan"), "not a finite number"),
    ("threads-zero", surface_with("--threads", "0"), "expected a thread count"),
    ("eig-max-iter-one", surface_with("--eig", "--eig-max-iter", "1"), "expected an integer >= 2"),
    ("model-args-bad-json", surface_with("--model-args", "{bad"), "not valid JSON"),
    ("dir-file-not-h5", lambda ws, d: surface_argv(ws.ckpt, d, "--dir-file", ws.ckpt), "is not an h5 file"),
    ("dir-file-missing", lambda ws, d: surface_argv(ws.ckpt, d, "--dir-file", d / "none.h5"), "does not exist"),
    ("ckpt-missing", lambda ws, d: surface_argv(d / "none.pt", d), "does not exist"),
    ("epochs-inf", lambda ws, d: ["train", "--out", d / "run", "--epochs", "inf"], "not a finite number"),
    ("epochs-1e308", lambda ws, d: ["train", "--out", d / "run", "--epochs", "1e308"], "--epochs must be at most"),
    ("train-seed-negative", train_with("--seed", "-1"), "expected a seed"),
    ("train-model-args-width", train_with("--model-args", '{"width": -2}'), "takes no argument(s) ['width']"),
    ("train-model-args-negative", train_with("--model-args", '{"channels": [-2, 4, 4]}'), "negative dimension"),
    ("train-momentum-nan", train_with("--momentum", "nan"), "not a finite number"),
    ("train-weight-decay-negative", train_with("--weight-decay", "-1"), "expected a number >= 0"),
    ("train-milestones-words", train_with("--milestones", "a,b"), "expected a fraction in (0, 1]"),
    ("train-target-error-nan", train_with("--target-error", "nan"), "not a finite number"),
    ("train-warmup-negative", train_with("--warmup-steps", "-5"), "expected an integer >= 0"),
    ("dpi-inf", render_with("--dpi", "inf"), "not a finite number"),
    ("dpi-zero", render_with("--dpi", "0"), "expected a resolution from 10 to 1200 dpi"),
    ("vmax-nan-render", render_with("--vmax", "nan"), "not a finite number"),
    ("vmax-nan-plot", lambda ws, d: ["plot", *surface_argv(ws.ckpt, d)[1:], "--vmax", "nan"], "not a finite number"),
    ("levels-zero", render_with("--levels", "0"), "expected an integer from 1 to 1000"),
    ("hessian-k-zero", lambda ws, d: hessian_argv(ws.ckpt, d, "--k", "0"), "expected a positive integer"),
    ("hessian-tol-nan", lambda ws, d: hessian_argv(ws.ckpt, d, "--tol", "nan"), "not a finite number"),
    ("hessian-seed-huge", lambda ws, d: hessian_argv(ws.ckpt, d, "--seed", str(2**70)), "expected a seed"),
    ("sharpness-eps-inf", lambda ws, d: sharpness_argv(ws.ckpt, d, "--eps", "inf"), "not a finite number"),
    ("sweep-batch-size-zero", lambda ws, d: ["sweep", "--out", d / "runs", "--batch-sizes", "32,0", "--dry-run"],
     "expected a positive integer"),
    ("sweep-lrs-nan", lambda ws, d: ["sweep", "--out", d / "runs", "--lrs", "nan", "--dry-run"], "not a finite number"),
    ("bias-dir-with-dir-file", lambda ws, d: surface_argv(ws.ckpt, d, "--ignore", "none", "--bias-dir", "weights",
                                                          "--dir-file", ws.s1 / "random_1d_directions.h5"),
     "with --dir-file none is drawn"),
    ("bias-dir-with-ckpt3", surface_with("--y", "-1:1:3", "--ckpt2", "b.pt", "--ckpt3", "c.pt", "--bias-dir", "random"),
     "with --ckpt3 none is drawn"),
    ("demo-grid-zero", lambda ws, d: ["demo", "--out", d / "demo", "--grid", "0"], "expected an integer from 1 to"),
    ("demo-grid-huge", lambda ws, d: ["demo", "--out", d / "demo", "--grid", "100000"], "expected an integer from 1 to"),
]
CASES += [Case(id, argv, fragment) for id, argv, fragment in VALUES]

# ------------------------------------------------------------------ output paths (checked before any work)
OUTPUTS = {  # command -> argv with its output directory
    "surface": lambda ws, d, out: surface_argv(ws.ckpt, d)[:-2] + ["--out", out],
    "plot": lambda ws, d, out: ["plot", *surface_argv(ws.ckpt, d)[1:-2], "--out", out],
    "hessian": lambda ws, d, out: hessian_argv(ws.ckpt, d)[:-2] + ["--out", out],
    "sharpness": lambda ws, d, out: sharpness_argv(ws.ckpt, d)[:-2] + ["--out", out],
    "render": lambda ws, d, out: ["render", ws.s2 / "random_2d.h5", "--out", out],
    "train": lambda ws, d, out: ["train", "--steps", "2", "--no-progress", "--out", out],
}


def _a_file(d: Path) -> Path:
    (d / "taken").write_text("a file")
    return d / "taken"


PLACES = {  # where -> (output path in case directory d, fragment)
    "is-a-file": (lambda ws, d: _a_file(d), "is a file, not a directory"),
    "under-a-file": (lambda ws, d: _a_file(d) / "out", "which is a file, not a directory"),
    "read-only": (lambda ws, d: ws.readonly / "out", "cannot write to --out"),
}
for _cmd, _argv in OUTPUTS.items():
    for _where, (_place, _fragment) in PLACES.items():
        CASES.append(Case(f"out-{_where}-{_cmd}", lambda ws, d, argv=_argv, place=_place: argv(ws, d, place(ws, d)),
                          _fragment))


# ------------------------------------------------------------------ running them
@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    from landscape.cli import main

    root = tmp_path_factory.mktemp("bad_input")
    torch.manual_seed(0)
    model = landscape.build_model("convnet", input_shape=(1, 8, 8), num_classes=10, channels=(2, 4, 4))
    ckpt = save_checkpoint(root / "ckpt.pt", model, {"dataset": "digits"})
    st = save_safetensors(root / "ckpt.safetensors", model, {"dataset": "digits"})
    for out, grid in (("s1", []), ("s2", ["--y", "-1:1:3"])):
        assert main(["surface", "--ckpt", str(ckpt), "--x", "-1:1:3", *grid, *FAST, "--out", str(root / out)]) == 0
    return Workspace(root, ckpt, st, root / "s1", root / "s2", readonly_dir(root))


@dataclass
class Outcome:
    rc: int | None
    stderr: str
    executed: bool  # a hostile pickle's payload ran
    skipped: str = ""


ENV = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
FORKS = Path(__file__).with_name("cli_forks.py")


def _prepare(ws: Workspace, c: Case, root: str = "cases") -> dict | None:
    """The case's own directory and command (None: it cannot run on this machine)."""
    d = ws.root / root / c.id
    d.mkdir(parents=True)
    if "read-only" in c.id and ws.readonly is None:
        return None
    return {"argv": [str(a) for a in c.argv(ws, d)], "cwd": str(d), "stdout": str(d / "stdout"),
            "stderr": str(d / "stderr")}


def _outcome(job: dict | None, rc: int) -> Outcome:
    if job is None:
        return Outcome(None, "", False, skipped="no read-only directory on this machine")
    return Outcome(rc, Path(job["stderr"]).read_text(), (Path(job["cwd"]) / "PWNED").exists())


@pytest.fixture(scope="module")
def outcomes(workspace) -> dict[str, Outcome]:
    """Every case, run once as ``python -m landscape ARGS`` in a process of its own: forked, two at a
    time, from one interpreter that imported torch once (tests/cli_forks.py), not ~100 torch imports."""
    jobs = [_prepare(workspace, c) for c in CASES]
    given = [j for j in jobs if j is not None]
    (workspace.root / "jobs.json").write_text(json.dumps(given))
    r = subprocess.run([sys.executable, FORKS, workspace.root / "jobs.json", workspace.root / "results.json"],
                       env=ENV, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr
    rcs = iter(x["rc"] for x in json.loads((workspace.root / "results.json").read_text()))
    return {c.id: _outcome(j, next(rcs) if j is not None else 0) for c, j in zip(CASES, jobs)}


@pytest.mark.parametrize("id", ["hostile-pickle-pt", "journal-torn-last-line-resume"])
def test_a_forked_run_says_what_a_fresh_interpreter_says(id, workspace, outcomes):
    """The forks stand for ``python -m landscape``: a refusal and a repaired resume, run fresh, agree."""
    c = next(c for c in CASES if c.id == id)
    job = _prepare(workspace, c, "fresh")
    with open(job["stderr"], "w") as err:
        rc = subprocess.run([sys.executable, "-m", "landscape", *job["argv"]], cwd=job["cwd"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=err, timeout=600).returncode
    fresh, forked = _outcome(job, rc), outcomes[id]
    assert fresh.rc == forked.rc == c.rc and not fresh.executed
    assert fresh.stderr.replace(job["cwd"], "D") == forked.stderr.replace(str(workspace.root / "cases" / id), "D")


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(c: Case, outcomes):
    out = outcomes[c.id]
    if out.skipped:
        pytest.skip(out.skipped)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr, out.stderr
    assert not out.executed, "a hostile pickle ran code"
    assert out.rc == c.rc, out.stderr
    if c.rc == 2:
        assert len(lines) == 1, out.stderr
        assert c.fragment in lines[0], lines[0]
        assert lines[0].startswith("landscape ") and ": error: " in lines[0]
    else:  # repaired: one warning, also where the cost plan read the journal before the run
        assert len(lines) == 1, out.stderr
        assert lines[0].startswith("warning: ") and c.fragment in lines[0], out.stderr
