"""What an adaptation curve's points are called: inner steps (``0 steps``, ``1 step``, ...), or
for an RL² run a trial's episodes (``episode 1``, ``episode 2``, ...), whose points are returns
of successive episodes of one task, not gradient steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_trial_curve(config: Any) -> bool:
    """Whether a run's curve holds a trial's episodes: an RL² run (``algo.method: rl2``), given
    its config model or its flattened config (``{"algo.method": ...}``, as ``compare`` reads)."""
    if isinstance(config, Mapping):
        return config.get("algo.method") == "rl2"
    return getattr(getattr(config, "algo", None), "method", None) == "rl2"


def point_names(count: int, episodes: bool) -> list[str]:
    """The names of a curve's first ``count`` points."""
    if episodes:
        return [f"episode {i + 1}" for i in range(count)]
    return [f"{i} step{'s' * (i != 1)}" for i in range(count)]
