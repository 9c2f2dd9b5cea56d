"""The meta-RL outer learners: MAML-TRPO (with its TRPO machinery) and Reptile."""

from .maml_trpo import MAMLTRPO
from .reptile import ReptileRL

__all__ = ["MAMLTRPO", "ReptileRL"]
