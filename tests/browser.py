"""Headless Chromium for the view tests: open a page, return its DOM after scripts ran and a screenshot.

Debian's ``chromium`` driven by its own command line (no driver library, nothing downloaded). The
flags keep it off the network and away from any profile; software WebGL draws plotly's 3D surface.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader", "--hide-scrollbars"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_page(page: Path, screenshot: Path, *, size: tuple[int, int] = (1400, 1000), budget_ms: int = 8000,
              timeout: int = 90) -> tuple[str, str]:
    """Load ``page`` headless; return (DOM after scripts ran, Chromium's log) and write ``screenshot``."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
               f"--virtual-time-budget={budget_ms}", "--enable-logging=stderr", "--v=0",
               f"--screenshot={screenshot}", "--dump-dom", Path(page).resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HOME": profile})
    return proc.stdout, proc.stderr
