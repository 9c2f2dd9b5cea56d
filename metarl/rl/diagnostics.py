"""Per-iteration diagnostics of the pre-update policy on its own episodes (``diag/...`` metrics).

They describe what the meta-policy does before adaptation, where a seed's fate shows first:

==================== ==========================================================================
key                  meaning
==================== ==========================================================================
``clipped_actions``  fraction of executed action components that fell outside the action
                     space's bounds before clipping (log-probabilities use the unclipped
                     action, so a clipped component's noise changes nothing the env sees)
``abs_action_mean``  mean ``|mean action|`` in env units (after ``sampler.action_scale`` and
                     ``rescale_actions``), over components and valid steps
``log_std``          mean log-std of the Gaussian policy (policy units)
``dead_units``       fraction of hidden units whose activation slope is below 0.01 on every
                     valid step (ReLU: never positive; tanh: saturated, ``|x| > 2.99``): they
                     pass no gradient
``always_on_units``  fraction of hidden units that stay in the linear regime on every valid
                     step (ReLU: always positive; tanh: ``|x| < 0.5``): they add no
                     non-linearity
``clipped_obs``      fraction of observation components whose standardised value lies beyond
                     ``+-OBS_CLIP`` and is clipped there (``policy.normalize_obs`` only; the
                     fixed statistics come from random-action episodes, so a gait that leaves
                     their range shows here)
``reward_task``      mean episode return without the control term
``reward_ctrl``      mean episode sum of the control term (``info["reward_ctrl"]``, <= 0); both
                     reward keys only where the env reports that term (the MuJoCo families)
==================== ==========================================================================

The action keys exist for Gaussian policies only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from .policies import OBS_CLIP, Policy
from .sampling.actions import ActionMap
from .trajectories import Trajectories

#: slope below which a unit passes no gradient, and the tanh inputs that give it
DEAD_SLOPE = 0.01
TANH_DEAD = float(np.arctanh(np.sqrt(1 - DEAD_SLOPE)))  # 2.99
TANH_LINEAR = 0.5  # tanh's slope stays above 0.79 inside |x| < 0.5


def policy_diagnostics(
    policy: Policy,
    params: Mapping[str, Tensor],
    traj: Trajectories,
    action_space: spaces.Space,
    action_map: ActionMap,
) -> dict[str, float]:
    """The table above for shared ``params`` on ``traj`` (episodes sampled with them)."""
    valid = traj.mask.reshape(-1) > 0
    obs = traj.obs.reshape(-1, traj.obs.shape[-1])[valid]
    out: dict[str, float] = {}
    with torch.no_grad():
        pre = policy.hidden_preactivations(params, obs)
        out.update(_unit_fractions(pre, policy.activation))
        if policy.normalizes_obs:
            beyond = policy.standardized(obs).abs() > OBS_CLIP
            out["clipped_obs"] = float(beyond.float().mean())
        if not policy.discrete:
            mean, log_std = policy.dist(params, obs)
            actions = traj.actions.reshape(-1, traj.actions.shape[-1])[valid].cpu().numpy()
            low, high = action_space.low, action_space.high
            out["clipped_actions"] = float(action_map.outside_bounds(actions, low, high).mean())
            out["abs_action_mean"] = float(
                np.abs(action_map.unclipped(mean.cpu().numpy(), low, high)).mean()
            )
            out["log_std"] = float(log_std.mean())
    if traj.reward_ctrl is not None:
        ctrl = traj.pooled_mean(traj.reward_ctrl.sum(-1))
        out["reward_ctrl"] = ctrl
        out["reward_task"] = traj.mean_return() - ctrl
    return out


def _unit_fractions(pre: list[Tensor], activation: str) -> dict[str, float]:
    """Fractions of dead and always-linear hidden units over all hidden layers."""
    dead = linear = total = 0
    for x in pre:  # "on every step" through each unit's extremes (a column-wise all() is slow)
        if activation == "relu":
            dead += int((x.amax(0) <= 0).sum())
            linear += int((x.amin(0) > 0).sum())
        else:
            size = x.abs()
            dead += int((size.amin(0) > TANH_DEAD).sum())
            linear += int((size.amax(0) < TANH_LINEAR).sum())
        total += x.shape[-1]
    return {"dead_units": dead / max(total, 1), "always_on_units": linear / max(total, 1)}
