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
  the old one.

A new task is drawn for every episode of every copy (the env's own sampling range), from the
env's generator, which ``seed`` seeds at the next ``reset``. Wrap in SB3's ``VecMonitor`` for
episode statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.wrappers.utils import rescale_box
from stable_baselines3.common.vec_env import VecEnv

from envs import TaskInObservation

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
    ) -> None:
        self.venv = make_env(env_id, "batched", num_envs, dict(env_kwargs or {}), horizon, 1)
        if not hasattr(self.venv, "reset_ended"):
            raise ValueError(f"{env_id} has no metarl batched version; use a DummyVecEnv")
        single = self.venv.single_env  # the batched env's own single env: spaces and tasks
        self._oracle = TaskInObservation(single) if oracle else None
        obs_space = (
            single.observation_space if self._oracle is None else self._oracle.observation_space
        )
        env_space = self.venv.single_action_space
        action_space = sb3_action_space(env_space, sampler)
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
        if self._oracle is not None:
            self._task_rows = self._rows(self.venv.get_tasks())
        return self._observe(obs, slice(None))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
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
