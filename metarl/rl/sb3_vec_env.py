"""Stable-Baselines3's ``VecEnv`` over a metarl batched env: every copy in one vectorised step.

SB3 steps a ``DummyVecEnv`` of single envs one by one through their wrappers (about 0.3 ms per
env step on 2D navigation here), while metarl's batched families step every copy in one numpy or
``mujoco.batch`` call. :class:`BatchedSB3VecEnv` gives SB3 that batched env with SB3's
conventions, the same as a ``DummyVecEnv`` of the single envs the baselines use:

* **same-step autoreset**: a copy whose episode ended is reset in the same ``step``
  (:meth:`envs.vector_base.BatchedTaskVectorEnv.reset_ended`); its last observation is in
  ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` says whether the time
  limit ended it, as SB3's ``Monitor``/``TimeLimit`` handling expects;
* **actions in SB3's units**: SB3 acts on :func:`metarl.rl.sb3_policy.sb3_action_space` and the
  actions are mapped affinely onto the env's box, as ``RescaleAction`` does in
  :func:`metarl.rl.sb3_policy.sb3_env`;
* **the oracle's observation** (``oracle=True``): each copy's current task appended, flattened as
  :class:`envs.TaskInObservation` does; a reset copy shows its new task, its terminal observation
  the old one;
* **RL²'s trials** (``episodes_per_trial=K``): an SB3 episode is a trial of K episodes of one
  task, observed as :class:`envs.RL2Trial` observes it (previous action in SB3's units, previous
  reward, episode-end flag; :func:`envs.wrappers.rl2_observation_space`). An inner episode's end
  resets the copy with the same task and is not an SB3 ``done``; the K-th is, with
  ``TimeLimit.truncated`` true (a trial ends by its length, as ``RL2Trial`` truncates it). Every
  step's ``info["episode_in_trial"]`` is the 0-based inner episode the step belonged to.

A new task is drawn for every episode (RL²: every trial) of every copy (the env's own sampling
range), from the env's generator, which ``seed`` seeds at the next ``reset``, unless
:meth:`BatchedSB3VecEnv.set_tasks` fixed them. Wrap in SB3's ``VecMonitor`` for episode (RL²:
trial) statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.wrappers.utils import rescale_box
from stable_baselines3.common.vec_env import VecEnv

from envs import TaskInObservation
from envs.wrappers import rl2_observation_space, rl2_previous_actions

from .config import SamplerConfig
from .sampling.backends import make_env
from .sb3_policy import sb3_action_space


class BatchedSB3VecEnv(VecEnv):
    """``num_envs`` copies of ``env_id`` (a family with a batched version) as an SB3 ``VecEnv``."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        horizon: int,
        env_kwargs: dict[str, Any] | None = None,
        sampler: SamplerConfig | None = None,
        oracle: bool = False,
        episodes_per_trial: int | None = None,
    ) -> None:
        if oracle and episodes_per_trial is not None:
            raise ValueError("BatchedSB3VecEnv: choose the oracle or RL²'s trials, not both")
        if episodes_per_trial is not None and episodes_per_trial < 1:
            raise ValueError(f"episodes_per_trial must be >= 1, got {episodes_per_trial}")
        self.venv = make_env(env_id, "batched", num_envs, dict(env_kwargs or {}), horizon, 1)
        if not hasattr(self.venv, "reset_ended"):
            raise ValueError(f"{env_id} has no metarl batched version; use a DummyVecEnv")
        single = self.venv.single_env  # the batched env's own single env: spaces and tasks
        self._oracle = TaskInObservation(single) if oracle else None
        env_space = self.venv.single_action_space
        action_space = sb3_action_space(env_space, sampler)
        obs_space = (
            single.observation_space if self._oracle is None else self._oracle.observation_space
        )
        self._trial = episodes_per_trial
        if episodes_per_trial is not None:
            obs_space, _ = rl2_observation_space(single.observation_space, action_space)
        self._episode_in_trial = np.zeros(num_envs, np.int64)
        self._to_env: Callable[[np.ndarray], np.ndarray] | None = None
        if action_space is not env_space:  # RescaleAction's map, applied to every copy at once
            self._to_env = rescale_box(env_space, action_space.low, action_space.high)[2]
        self._actions: np.ndarray | None = None
        self._task_rows = np.zeros((num_envs, 0), np.float32)  # the oracle's, per copy
        super().__init__(num_envs, obs_space, action_space)

    # -- SB3's VecEnv --------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._episode_in_trial[:] = 0
        if self._oracle is not None:
            self._task_rows = self._rows(self.venv.get_tasks())
        if self._trial is not None:
            return self._trial_start(obs)
        return self._observe(obs, slice(None))

    def set_tasks(self, tasks: list[dict]) -> None:
        """One fixed task per copy from the next :meth:`reset` on, kept across its episodes (and
        RL²'s trials); for evaluating on given tasks."""
        self.venv.set_tasks(list(tasks))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        if self._trial is not None:
            return self._trial_step()
        obs, reward, terminated, truncated, _ = self.venv.step(self._env_actions(self._actions))
        done = np.asarray(terminated) | np.asarray(truncated)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        obs = self._observe(obs, slice(None))
        if done.any():
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            ids, first = self.venv.reset_ended()
            if self._oracle is not None and ids.size:
                tasks = self.venv.get_tasks()  # the new tasks of the reset copies
                self._task_rows[ids] = self._rows([tasks[i] for i in ids])
            obs[ids] = self._observe(first, ids)
        return obs, np.asarray(reward, dtype=np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * len(self._get_indices(indices))
        return [getattr(self.venv, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"BatchedSB3VecEnv copies share one env; cannot set {attr_name!r}")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        result = getattr(self.venv, method_name)(*args, **kwargs)  # once: the copies share it
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    # -- RL²'s trials ---------------------------------------------------------------------------
    def _trial_start(self, obs: np.ndarray) -> np.ndarray:
        """First observations of new trials: no previous action or reward, no episode end."""
        obs = np.asarray(obs, np.float32).reshape(self.num_envs, -1)
        tail = np.zeros((self.num_envs, self.observation_space.shape[0] - obs.shape[1]))
        return np.concatenate([obs, tail.astype(np.float32)], 1)

    def _trial_step(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        actions = self._actions
        inner, reward, terminated, truncated, _ = self.venv.step(self._env_actions(actions))
        ended = np.asarray(terminated) | np.asarray(truncated)
        reward = np.asarray(reward, dtype=np.float32)
        infos: list[dict[str, Any]] = [{"episode_in_trial": int(k)} for k in self._episode_in_trial]
        inner = np.asarray(inner, np.float32).reshape(self.num_envs, -1)
        previous = rl2_previous_actions(self.action_space, actions)
        flags = np.stack([reward, ended.astype(np.float32)], 1)
        obs = np.concatenate([inner, previous, flags], 1)
        self._episode_in_trial[ended] += 1
        done = ended & (self._episode_in_trial >= self._trial)
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = obs[i].copy()
            infos[i]["TimeLimit.truncated"] = True  # the trial's length ended it
        if ended.any():  # same task within a trial, a new one for the next trial
            ids, first = self.venv.reset_ended(keep_task=~done)
            obs[ids, : inner.shape[1]] = np.asarray(first, np.float32).reshape(len(ids), -1)
            obs[done, inner.shape[1] :] = 0.0
            self._episode_in_trial[done] = 0
        return obs, reward, done, infos

    # -- pieces --------------------------------------------------------------------------------
    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        return actions if self._to_env is None else self._to_env(actions)

    def _rows(self, tasks: list[dict]) -> np.ndarray:
        return np.stack([self._oracle.task_vector(t) for t in tasks])  # type: ignore[union-attr]

    def _observe(self, obs: np.ndarray, ids: slice | np.ndarray) -> np.ndarray:
        """The observations of copies ``ids``, with their tasks for the oracle (a new array)."""
        obs = np.asarray(obs, dtype=np.float32)
        if self._oracle is None:
            return obs.copy()
        return np.concatenate([obs, self._task_rows[ids]], 1)
