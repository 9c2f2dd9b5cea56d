"""How a Gaussian policy's action becomes the action the env executes, written once.

The policy's action ``a`` (as sampled, and as recorded in the trajectories for the
log-probabilities) goes to the env as

    a_env = clip(map(a / scale), low, high)

``scale`` (``sampler.action_scale``): the policy acts in units ``scale`` times larger than the
env's, so a log-std of 0 explores with standard deviation ``1 / scale`` in env units
(pytorch-maml-rl v2, ProMP and garage use 10: "normalization_scale" / "expected_action_scale");
``map`` (``sampler.rescale_actions``): the affine map of [-1, 1] onto ``[low, high]``, as rllab's
``NormalizedEnv`` (which the MAML code wraps every env in; the identity for [-1, 1] boxes,
x0.1 for Navigation2D's [-0.1, 0.1]); ``clip`` (``sampler.clip_actions``): clipping to the
bounds, so control costs apply to the executed action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActionMap:
    """``clip``, ``rescale`` and ``scale`` as in the module docstring (defaults: clip only)."""

    clip: bool = True
    rescale: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"action scale must be a finite number > 0, got {self.scale}")

    def unclipped(self, actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """``map(a / scale)``: the env action before clipping."""
        out = actions / self.scale if self.scale != 1.0 else actions
        if self.rescale:
            out = low + (out + 1.0) * 0.5 * (high - low)
        return out

    def to_env(self, actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The action the env executes."""
        out = self.unclipped(actions, low, high)
        return np.clip(out, low, high) if self.clip else out

    def outside_bounds(self, actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Boolean mask of the components that fall outside ``[low, high]`` (which ``clip``
        changes, or which the env receives out of range when ``clip`` is off)."""
        out = self.unclipped(actions, low, high)
        return (out < low) | (out > high)
