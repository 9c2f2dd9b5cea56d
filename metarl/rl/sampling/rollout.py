"""The closed-loop rollout, written once: every sampler backend steps its episodes through
:func:`rollout` (in this process, in a worker process, or in a Ray actor).

``tasks * episodes`` copies run at once in one vector env (copy ``i * E + j`` is episode ``j`` of
task ``i``); each step makes one batched policy call (per-task parameters stacked, see
:mod:`metarl.rl.policies`) and draws the exploration noise for all copies from one seeded numpy
generator, so the same generator state gives the same trajectories on every env backend.

Gaussian actions are recorded as sampled (for the log-probabilities); the env executes them
through an :class:`~metarl.rl.sampling.actions.ActionMap` (scale, rescale onto the bounds, clip). Where
the env reports the control term of its reward (``info["reward_ctrl"]``, the MuJoCo families),
it is recorded too (``reward_ctrl``), so the reward can be split into task term and control cost.

A step whose reward is not finite, or that the env flags ``info["sim_unstable"]``, ends the
copy's episode; a non-finite reward is recorded as 0 with mask 0. Where the env can pause
copies whose episode ended (``pause_ended``, the natively batched envs), it does after every
step, so the steps after an episode's end cost no physics (the recorded arrays are the same).

The result is plain numpy (:data:`Arrays`, shaped ``[tasks, episodes, H, ...]``) so that workers
can send it back in one message; :func:`to_trajectories` turns it into
:class:`~metarl.rl.trajectories.Trajectories`, :func:`join_arrays` joins workers' parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from ..policies import Policy
from ..trajectories import Trajectories
from .actions import ActionMap
from .backends import set_tasks

#: ``{"obs", "actions", "rewards", "mask"}`` (and ``"reward_ctrl"`` where the env reports it)
#: numpy arrays shaped ``[tasks, episodes, H, ...]``
Arrays = dict[str, np.ndarray]


def rollout(
    env: VectorEnv,
    policy: Policy,
    params: Mapping[str, Tensor],
    tasks: Sequence[dict],
    episodes: int,
    horizon: int,
    rng: np.random.Generator,
    action_map: ActionMap | None = None,
) -> Arrays:
    """Run ``episodes`` episodes of every task in ``env`` (``len(tasks) * episodes`` copies).

    ``params`` is shared or stacked ``[len(tasks), ...]``; call under ``torch.no_grad()``. The
    env reset seed and then every step's noise are drawn from ``rng``.
    """
    num_tasks = len(tasks)
    n = num_tasks * episodes
    set_tasks(env, [task for task in tasks for _ in range(episodes)])
    obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    obs_dim = obs.shape[-1]
    discrete = policy.discrete
    act_shape = () if discrete else env.single_action_space.shape
    obs_buf = np.zeros((horizon, n, obs_dim), dtype=np.float32)
    act_buf = np.zeros((horizon, n, *act_shape), dtype=np.int64 if discrete else np.float32)
    rew_buf = np.zeros((horizon, n), dtype=np.float32)
    mask_buf = np.zeros((horizon, n), dtype=np.float32)
    ctrl_buf: np.ndarray | None = None
    action_map = action_map or ActionMap()
    low = None if discrete else env.single_action_space.low
    high = None if discrete else env.single_action_space.high
    alive = np.ones(n, dtype=bool)
    pause_ended = getattr(env, "pause_ended", None)
    for t in range(horizon):
        obs = np.asarray(obs, dtype=np.float32)
        dist = policy.dist(params, torch.from_numpy(obs).view(num_tasks, episodes, -1))
        actions = policy.sample_actions(dist, rng).reshape(n, *act_shape)
        obs_buf[t], act_buf[t], mask_buf[t] = obs, actions, alive
        if not discrete:
            actions = action_map.to_env(actions, low, high)
        obs, reward, terminated, truncated, info = env.step(actions)
        reward = np.asarray(reward, dtype=np.float64)
        broken = ~np.isfinite(reward)
        unstable = np.asarray(info.get("sim_unstable", False)) | broken
        rew_buf[t] = np.where(alive & ~broken, reward, 0.0)
        if "reward_ctrl" in info:
            if ctrl_buf is None:
                ctrl_buf = np.zeros((horizon, n), dtype=np.float32)
            ctrl = np.asarray(info["reward_ctrl"], dtype=np.float64)
            ctrl_buf[t] = np.where(alive & ~broken & np.isfinite(ctrl), ctrl, 0.0)
        mask_buf[t] *= ~broken
        alive &= ~(np.asarray(terminated) | np.asarray(truncated) | unstable)
        if not alive.any():
            break
        if pause_ended is not None:
            pause_ended()
    steps = t + 1  # the longest episode: the learner need not read the padding after it

    def shaped(buf: np.ndarray) -> np.ndarray:  # [H, T*E, ...] -> [T, E, steps, ...]
        x = buf[:steps].reshape(steps, num_tasks, episodes, *buf.shape[2:])
        return np.ascontiguousarray(np.moveaxis(x, 0, 2))

    arrays = {
        "obs": shaped(obs_buf),
        "actions": shaped(act_buf),
        "rewards": shaped(rew_buf),
        "mask": shaped(mask_buf),
    }
    if ctrl_buf is not None:
        arrays["reward_ctrl"] = shaped(ctrl_buf)
    return arrays


def join_arrays(parts: Sequence[Arrays], axis: int) -> Arrays:
    """Concatenate workers' parts along the task (0) or episode (1) axis (always a copy), the
    shorter parts zero-padded in time to the longest (zeros are what padding holds)."""
    steps = max(p["mask"].shape[2] for p in parts)

    def padded(x: np.ndarray) -> np.ndarray:
        if x.shape[2] == steps:
            return x
        width = [(0, 0)] * x.ndim
        width[2] = (0, steps - x.shape[2])
        return np.pad(x, width)

    return {k: np.concatenate([padded(p[k]) for p in parts], axis=axis) for k in parts[0]}


def to_trajectories(arrays: Arrays) -> Trajectories:
    """:class:`Trajectories` over ``arrays`` (returns and lengths from rewards and mask)."""
    rewards, mask = torch.from_numpy(arrays["rewards"]), torch.from_numpy(arrays["mask"])
    return Trajectories(
        obs=torch.from_numpy(arrays["obs"]),
        actions=torch.from_numpy(arrays["actions"]),
        rewards=rewards,
        mask=mask,
        returns=rewards.sum(-1),
        lengths=mask.sum(-1).long(),
        reward_ctrl=torch.from_numpy(arrays["reward_ctrl"]) if "reward_ctrl" in arrays else None,
    )
