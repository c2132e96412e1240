"""landscape: loss-landscape and sharpness analysis for deep networks.

The top level re-exports the public API (GUIDE.md section 3); submodules load on first use so
``import landscape`` stays quick and plotting never imports matplotlib until asked.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint", "Checkpoint": "checkpoint",
    "build_model": "models", "list_models": "models", "register_model": "models",
    "get_dataset": "data", "LabeledData": "data",
    "random_directions": "directions", "interpolation_direction": "directions",
    "plane_directions": "directions", "save_directions": "directions", "load_directions": "directions",
    "evaluate": "evaluation", "Evaluator": "evaluation",
    "compute_surface": "surface", "load_surface": "surface", "Surface": "surface",
    "LandscapeError": "errors",
    "EmpiricalRisk": "risk", "MeasureStore": "store",
}
_SUBMODULES = {"hessian", "sharpness", "ops", "models", "data", "directions", "surface", "plot", "train",
               "sweep", "report", "figures", "checkpoint", "params", "losses", "bench", "trajectory",
               "evaluation", "errors", "risk", "store", "batches", "rng"}

__all__ = ["Checkpoint", "EmpiricalRisk", "Evaluator", "LabeledData", "LandscapeError", "MeasureStore", "Surface",
           "build_model", "compute_surface", "evaluate", "get_dataset", "interpolation_direction", "list_models",
           "load_checkpoint", "load_directions", "load_surface", "plane_directions", "random_directions",
           "register_model", "save_checkpoint", "save_directions", "__version__"]  # literal: read without running it


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
