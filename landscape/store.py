"""One store for finished measurements: reused only when checkpoint, data, measure and request match.

Long measurements (many probes, SLQ runs, PAC-Bayes bisections on a large model) must not be
lost to a kill, and a rerun must not redo what is done. A `MeasureStore` is one JSON file whose
``base`` says what every entry was measured on (checkpoint hash, data fingerprint, shared
settings); each entry is a named part with the exact ``request`` that made it. An entry is
reused only when the base and its request are identical, so reuse never changes a number; a
file with another base is started afresh. The file is rewritten atomically after every part.

Used by ``landscape hessian`` / ``landscape sharpness`` (their ``hessian.json`` and
``sharpness.json``), the report's per-run ``measures.json``, the figures' cache, and from Python:
``hessian.trace(risk, ..., store=MeasureStore.for_risk("m.json", risk))`` resumes probe by probe.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .jsonfile import jsonable, read_json, write_json_atomic


def plain(value: Any) -> Any:
    """What ``value`` reads back as from JSON, so requests and settings compare like for like."""
    return json.loads(json.dumps(jsonable(value), sort_keys=True, default=float))


class MeasureStore:
    """Named parts (each with its request) under one ``base``, in a JSON file rewritten after every part.

    ``container`` nests the parts under that key (``{"measures": {...}}``); without it they sit
    beside the base and the file also carries ``n_hvps_total``. ``fresh=True`` ignores what is there.
    """

    def __init__(self, path: str | os.PathLike, base: dict, container: str | None = None, fresh: bool = False):
        self.path, self.base, self.container = Path(path), plain(base), container
        old = None if fresh else read_json(self.path)
        if isinstance(old, dict) and {k: old.get(k) for k in self.base} == self.base:
            found = old.get(container, {}) if container else {k: v for k, v in old.items() if k not in self.base}
            self.old = {k: v for k, v in found.items() if isinstance(v, dict)}
        else:
            self.old = {}
        self.parts: dict = dict(self.old)
        self.reused: set[str] = set()  # parts handed back by `reuse` (a caller can say what it did not redo)

    @classmethod
    def for_risk(cls, path: str | os.PathLike, risk: Any, checkpoint: str | None = None) -> "MeasureStore":
        """A store for measures of ``risk``: keyed by ``checkpoint`` (a file's sha256) or the weights' hash,
        the data's fingerprint and the risk's settings."""
        return cls(path, {"checkpoint_sha256": checkpoint or weights_sha256(risk.model),
                          "data": data_fingerprint(risk), "risk": risk.settings})

    def reuse(self, name: str, request: dict) -> dict | None:
        """The stored part ``name`` if it was made by exactly this ``request``, else None."""
        part = self.parts.get(name)
        if part is None or part.get("request") != plain(request):
            return None
        self.reused.add(name)
        return part

    def put(self, name: str, value: dict, request: dict) -> None:
        self.parts[name] = plain({**value, "request": request})
        self.write()

    def annotate(self, name: str, **extra: Any) -> None:
        """Add fields to a stored part (where its figure went), keeping its request."""
        self.parts[name] = plain({**self.parts[name], **extra})
        self.write()

    def drop(self, name: str) -> None:
        """Forget a part (a partial one, once the whole part is in)."""
        self.parts.pop(name, None)

    def write(self) -> Path:
        record = dict(self.base)
        if self.container:
            record[self.container] = self.parts
        else:
            record.update(self.parts)
            record["n_hvps_total"] = sum(p.get("n_hvps", 0) for p in self.parts.values())
        return write_json_atomic(self.path, record)


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the model's state (names, shapes, dtypes, bytes): stands in for a checkpoint hash."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(risk: Any) -> str:
    """A short hash of the samples a risk sees, in its order: their bytes when resident; when
    streaming, the sample count, the order and the first batch (reading all would cost a pass)."""
    h = hashlib.sha256(f"{risk.num_samples}".encode())
    if risk.subset is not None:
        h.update(risk.subset.numpy().tobytes())
    batches = list(risk.batches) if not risk.batches.streaming else risk.batches.head(1)
    for b in batches:
        leaves = list(b.inputs.values()) if isinstance(b.inputs, dict) else list(b.inputs)
        for t in [*leaves, b.target]:
            if isinstance(t, torch.Tensor):
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]
