"""Moved to `landscape.rng` (the one way to seed); kept so older imports keep working."""
from ..rng import generator, plain_generator

__all__ = ["generator", "plain_generator"]
