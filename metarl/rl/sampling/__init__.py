"""Sampling episodes for a meta-batch of tasks: the :class:`Sampler` front end, its backends
(``batched``, ``vector``, ``process``, ``ray``), the worker pools, the rollout loop, and the map
from policy outputs to env actions."""

from .actions import ActionMap
from .sampler import Sampler

__all__ = ["ActionMap", "Sampler"]
