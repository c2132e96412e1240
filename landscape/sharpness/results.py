"""The common shape of a sharpness result: the number, the settings that produced it, its cost."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..jsonfile import jsonable as _jsonable
from ..reprs import ShortRepr


@dataclass(repr=False)
class SharpnessResult(ShortRepr):
    """``value`` is the measure; ``base_loss`` the loss (or error) at the unperturbed weights;
    ``n_evals`` the number of loss (or loss-and-gradient) passes over the data it took."""

    value: float
    base_loss: float
    settings: dict = field(default_factory=dict)
    n_evals: int = 0

    def to_dict(self) -> dict:
        return {k: _jsonable(v) for k, v in asdict(self).items()}

    def __float__(self) -> float:
        return float(self.value)
