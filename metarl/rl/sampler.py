"""Closed-loop sampling of a meta-batch: ``sample(params, tasks, episodes_per_task)``.

All ``tasks * episodes_per_task`` episodes run at once in one vector env (copy ``i * E + j`` is
episode ``j`` of task ``i``); each step makes one batched policy call (per-task parameters
stacked, see :mod:`metarl.rl.policies`) and draws the exploration noise for all copies from one
seeded numpy generator, so the same seed gives the same trajectories on every backend.

Gaussian actions are recorded as sampled (for the log-probabilities). With ``rescale_actions``
the policy acts in [-1, 1] per dimension and the action is mapped affinely onto the action
space's bounds, ``low + (a + 1) / 2 * (high - low)``, as rllab's ``NormalizedEnv`` (the MAML code
wraps every env in it); an identity for [-1, 1] boxes (HalfCheetah, Ant), a scale of 0.1 for
Navigation2D's [-0.1, 0.1]. With ``clip_actions`` (default) the (rescaled) action is then clipped
to the bounds before the env sees it, as ``NormalizedEnv`` does, so control costs apply to the
executed action.

Sampling runs under ``torch.no_grad()`` with ``torch.set_num_threads(num_threads)`` (default 1):
torch's idle threads busy-wait and starve MuJoCo's stepping threads (REFERENCE section 5); the
previous thread count is restored afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .backends import env_horizon, make_env, resolve_backend, set_tasks
from .policies import Policy
from .trajectories import Trajectories


class Sampler:
    """Samples episodes of ``env_id`` with a functional ``policy``; envs are reused per size."""

    def __init__(
        self,
        env_id: str,
        policy: Policy,
        env_kwargs: Mapping[str, Any] | None = None,
        backend: str = "auto",
        horizon: int | None = None,
        num_threads: int = 1,
        rng: np.random.Generator | None = None,
        clip_actions: bool = True,
        rescale_actions: bool = False,
    ) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.policy = policy
        self.backend = resolve_backend(env_id, backend)
        self.horizon = env_horizon(env_id, horizon)
        self.num_threads = num_threads
        self.clip_actions = clip_actions
        self.rescale_actions = rescale_actions
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self._envs: dict[int, Any] = {}
        #: wall-clock seconds and env steps spent in :meth:`sample` so far (for throughput logs)
        self.total_time = 0.0
        self.total_steps = 0

    def env(self, num_envs: int):
        """The cached vector env with ``num_envs`` copies (built on first use)."""
        if num_envs not in self._envs:
            self._envs[num_envs] = make_env(
                self.env_id, self.backend, num_envs, self.env_kwargs, self.horizon
            )
        return self._envs[num_envs]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def sample(
        self,
        params: Mapping[str, Tensor],
        tasks: list[dict],
        episodes_per_task: int,
        rng: np.random.Generator | None = None,
    ) -> Trajectories:
        """Run ``episodes_per_task`` episodes of every task with ``params``.

        ``params`` is shared (one policy for all tasks) or stacked ``[tasks, ...]`` (one policy
        per task). ``rng`` defaults to the sampler's own generator.
        """
        if episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
        if not tasks:
            raise ValueError("sample needs at least one task")
        rng = self.rng if rng is None else rng
        params = {k: v.detach() for k, v in params.items()}
        threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                traj = self._rollout(params, tasks, episodes_per_task, rng)
        finally:
            torch.set_num_threads(threads)
        self.total_time += time.perf_counter() - start
        self.total_steps += traj.env_steps
        return traj

    def _rollout(
        self,
        params: dict[str, Tensor],
        tasks: list[dict],
        episodes: int,
        rng: np.random.Generator,
    ) -> Trajectories:
        num_tasks, horizon = len(tasks), self.horizon
        n = num_tasks * episodes
        env = self.env(n)
        set_tasks(env, [task for task in tasks for _ in range(episodes)])
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        obs_dim = obs.shape[-1]
        discrete = self.policy.discrete
        act_shape = () if discrete else env.single_action_space.shape
        obs_buf = np.zeros((horizon, n, obs_dim), dtype=np.float32)
        act_buf = np.zeros((horizon, n, *act_shape), dtype=np.int64 if discrete else np.float32)
        rew_buf = np.zeros((horizon, n), dtype=np.float32)
        mask_buf = np.zeros((horizon, n), dtype=np.float32)
        alive = np.ones(n, dtype=bool)
        for t in range(horizon):
            obs = np.asarray(obs, dtype=np.float32)
            dist = self.policy.dist(params, torch.from_numpy(obs).view(num_tasks, episodes, -1))
            actions = self.policy.sample_actions(dist, rng).reshape(n, *act_shape)
            obs_buf[t], act_buf[t], mask_buf[t] = obs, actions, alive
            if not discrete:  # as rllab's NormalizedEnv in the MAML code
                low, high = env.single_action_space.low, env.single_action_space.high
                if self.rescale_actions:
                    actions = low + (actions + 1.0) * 0.5 * (high - low)
                if self.clip_actions:
                    actions = np.clip(actions, low, high)
            obs, reward, terminated, truncated, info = env.step(actions)
            reward = np.asarray(reward, dtype=np.float64)
            broken = ~np.isfinite(reward)
            unstable = np.asarray(info.get("sim_unstable", False)) | broken
            rew_buf[t] = np.where(alive & ~broken, reward, 0.0)
            mask_buf[t] *= ~broken
            alive &= ~(np.asarray(terminated) | np.asarray(truncated) | unstable)
            if not alive.any():
                break

        def shaped(buf: np.ndarray) -> Tensor:  # [H, T*E, ...] -> [T, E, H, ...]
            x = torch.from_numpy(buf).view(horizon, num_tasks, episodes, *buf.shape[2:])
            return x.movedim(0, 2).contiguous()

        rewards, mask = shaped(rew_buf), shaped(mask_buf)
        return Trajectories(
            obs=shaped(obs_buf),
            actions=shaped(act_buf),
            rewards=rewards,
            mask=mask,
            returns=rewards.sum(-1),
            lengths=mask.sum(-1).long(),
        )
