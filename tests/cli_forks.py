"""Many ``python -m landscape ARGS`` runs for the price of one torch import: this interpreter imports
torch and the package once, then forks one child per command, which runs ``landscape/__main__.py``
as ``python -m`` would (its cwd, sys.argv, sys.path[0], stdout and stderr in files; an uncaught
exception prints its traceback and exits 1; atexit handlers run). Each command is its own process,
so the exit status and stderr are its own and no state passes from one to the next. The child
then ends with ``os._exit``: tearing down torch's modules and a garbage collection over the
inherited heap cost 1.5 s of CPU per child, the command itself often 0.05 s.

A fork is safe only while this process holds a single thread (a fork of a process holding torch's
thread pool or pytest-xdist's threads can deadlock in the child, see surface_child.py). Nothing
here computes, and the thread count is checked before every fork; should a thread ever appear,
the command runs in a fresh interpreter instead.

    python tests/cli_forks.py JOBS.json RESULTS.json [--parallel N]

JOBS.json: a list of {"argv": [...], "cwd": DIR, "stdout": FILE, "stderr": FILE}; RESULTS.json
gets, per job, {"rc": exit status (minus the signal if one ended it), "forked": bool, "cpu": seconds}.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import runpy
import subprocess
import sys
import threading

PRELOAD = ["torch", "numpy", "h5py", "safetensors.torch", "matplotlib.pyplot", "landscape", "landscape.cli",
           "landscape.workflow", "landscape.surface", "landscape.plot", "landscape.hessian", "landscape.sharpness",
           "landscape.train", "landscape.cost", "landscape.sweep"]


def _threads() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1


def _exit_status(code) -> int:
    """What the interpreter makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _as_command(job: dict) -> None:
    """In the child: be ``python -m landscape ARGS``, then end the process (never returns)."""
    status = 1
    try:
        os.chdir(job["cwd"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.argv = ["landscape", *job["argv"]]
        sys.path[0] = os.getcwd()  # as python -m sets it
        try:
            runpy.run_module("landscape", run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as e:
            status = _exit_status(e.code)
        except BaseException:
            sys.excepthook(*sys.exc_info())  # the traceback an uncaught exception prints
            status = 1
        threading._shutdown()  # what the interpreter does at exit: wait for threads, run atexit handlers
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status)


def _fresh(job: dict) -> dict:
    before = os.times()
    with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
        rc = subprocess.run([sys.executable, "-m", "landscape", *job["argv"]], cwd=job["cwd"], stdout=out,
                            stderr=err).returncode
    after = os.times()
    return {"rc": rc, "forked": False, "cpu": after.children_user + after.children_system - before.children_user -
            before.children_system}


def _reap() -> tuple[int, dict]:
    pid, status, usage = os.wait4(-1, 0)
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return pid, {"rc": rc, "forked": True, "cpu": usage.ru_utime + usage.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs")
    ap.add_argument("results")
    ap.add_argument("--parallel", type=int, default=2)
    a = ap.parse_args()
    jobs = json.loads(open(a.jobs).read())
    for name in PRELOAD:
        __import__(name)
    gc.freeze()  # the children's collections skip (and do not copy) the imported heap
    results: list[dict | None] = [None] * len(jobs)
    running: dict[int, int] = {}  # pid -> job index
    for i, job in enumerate(jobs):
        while len(running) >= a.parallel:
            pid, result = _reap()
            results[running.pop(pid)] = result
        if _threads() != 1:
            results[i] = _fresh(job)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _as_command(job)
        running[pid] = i
    while running:
        pid, result = _reap()
        results[running.pop(pid)] = result
    with open(a.results, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
