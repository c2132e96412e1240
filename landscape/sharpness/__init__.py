"""Sharpness of a minimum: Keskar's epsilon-sharpness, (adaptive) worst/average-case sharpness,
PAC-Bayes sigma.

Each measure takes ``(model, data, ..., loss=..., batch_size=..., params=...)``, evaluates the
model in eval mode at its current weights, puts the weights back exactly, and returns a result
dataclass holding the number, the settings that produced it (``.settings``) and its cost
(``.n_evals`` passes over the data); ``.to_dict()`` gives JSON-ready output.
"""
from __future__ import annotations

from .adaptive import AdaptiveResult, adaptive, average
from .keskar import KeskarResult, keskar, random_subspace
from .objective import LossObjective
from .pacbayes import PacBayesResult, pac_bayes_sigma
from .results import SharpnessResult

__all__ = ["keskar", "adaptive", "average", "pac_bayes_sigma", "KeskarResult", "AdaptiveResult", "PacBayesResult",
           "SharpnessResult", "LossObjective", "random_subspace"]
