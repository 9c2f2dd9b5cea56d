"""The meta-RL outer learners: MAML-TRPO (with its TRPO machinery), Reptile and ProMP."""

from .maml_trpo import MAMLTRPO
from .promp import ProMP
from .reptile import ReptileRL

__all__ = ["MAMLTRPO", "ProMP", "ReptileRL"]
