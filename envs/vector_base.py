"""Natively batched vector environments with one task per copy (the fast path).

:class:`BatchedTaskVectorEnv` handles what every batched family shares: per-copy tasks
(``set_tasks``/``get_tasks``, ``reset(options={"tasks": [...]})``), seeding, time limits,
Gymnasium's ``NEXT_STEP`` autoreset, and ``info["sim_unstable"]``. A family subclass implements
three vectorised hooks (no Python loop over copies):

* ``_apply_tasks(ids)``: push ``self._tasks[i]`` for ``i in ids`` into per-copy arrays;
* ``_reset_copies(ids, options) -> obs[ids]``: fresh start states (``options`` may carry
  per-copy initial states, see the family);
* ``_step_copies(actions, active) -> (obs, reward, terminated, unstable, info)``: step every copy
  where ``active`` (a bool mask, or None for all).

Autoreset (``metadata["autoreset_mode"] = AutoresetMode.NEXT_STEP``): the step after a copy's
episode ended resets that copy, ignores its action, and returns its first observation with reward
0 and ``terminated = truncated = False``. A caller that needs same-step resets (Stable-Baselines3's
``VecEnv``) calls :meth:`BatchedTaskVectorEnv.reset_ended` right after ``step``. A caller that
runs one episode per copy (metarl's rollout) calls :meth:`BatchedTaskVectorEnv.pause_ended`
instead: ended copies are then no longer simulated until the next ``reset``, so on families
whose episodes end early (Hopper, Walker2d, Ant falling) the copies still running cost the
physics, not the finished ones.

Version history: v0, first version.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


def _no_step(which, reward, info, terminated, truncated, unstable) -> None:
    """Copies ``which`` (ids or a mask) took no step of an episode: reward 0, no end flags."""
    reward[which] = 0.0
    if "reward_ctrl" in info:
        info["reward_ctrl"][which] = 0.0
    terminated[which] = False
    truncated[which] = False
    unstable[which] = False


class BatchedTaskVectorEnv(VectorEnv):
    """Base class; ``single_env`` is an instance of the single-env family (spaces, tasks)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, single_env: gymnasium.Env, num_envs: int, max_episode_steps: int | None):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.single_env = single_env
        self.single_observation_space = single_env.observation_space
        self.single_action_space = single_env.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.max_episode_steps = int(max_episode_steps or type(single_env).horizon)
        self._rng = np.random.default_rng()
        self._tasks: list[dict] = [{} for _ in range(self.num_envs)]
        self._tasks_fixed = False
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._paused = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    # ------------------------------------------------------------------ tasks
    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        """Same as the single env's ``sample_tasks``."""
        return self.single_env.sample_tasks(n, self._rng if rng is None else rng)

    def set_tasks(self, tasks: list[dict]) -> None:
        """One task per copy (``len(tasks) == num_envs``); kept across resets."""
        if not isinstance(tasks, (list, tuple)) or len(tasks) != self.num_envs:
            n = len(tasks) if isinstance(tasks, (list, tuple)) else type(tasks).__name__
            raise ValueError(f"set_tasks needs a list of {self.num_envs} task dicts, got {n}")
        self._tasks = [self.single_env.validate_task(t) for t in tasks]
        self._tasks_fixed = True
        self._apply_tasks(np.arange(self.num_envs))

    def set_task(self, task: dict) -> None:
        """The same task for every copy."""
        self.set_tasks([task] * self.num_envs)

    def get_tasks(self) -> list[dict]:
        """Each copy's current task."""
        import copy

        return copy.deepcopy(self._tasks)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple:
        """Minimal ``SyncVectorEnv.call``: ``set_task``/``get_task``/``sample_tasks``.

        ``call("set_task", task)`` sets the same task on every copy; ``call("set_task", tasks)``
        with a list of ``num_envs`` dicts sets one per copy.
        """
        if name == "set_task":
            (task,) = args
            if isinstance(task, (list, tuple)):
                self.set_tasks(list(task))
            else:
                self.set_task(task)
            return (None,) * self.num_envs
        if name == "get_task":
            return tuple(self.get_tasks())
        if name in ("sample_tasks", "set_tasks", "get_tasks"):
            return getattr(self, name)(*args, **kwargs)
        value = getattr(self, name)
        return value(*args, **kwargs) if callable(value) else value

    def get_attr(self, name: str) -> tuple:
        return (getattr(self.single_env, name),) * self.num_envs

    # ------------------------------------------------------------------ reset / step
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset every copy. ``options``: ``"tasks"`` (list) / ``"task"`` (one for all), plus
        family-specific initial states (e.g. ``"qpos"``/``"qvel"`` arrays ``(num_envs, n)``)."""
        if seed is not None:
            if isinstance(seed, (list, tuple)):
                seed = seed[0]
            self._rng = np.random.default_rng(seed)
            self._np_random, self._np_random_seed = self._rng, seed
        options = dict(options or {})
        if options.get("tasks") is not None:
            self.set_tasks(options.pop("tasks"))
        elif options.get("task") is not None:
            self.set_task(options.pop("task"))
        ids = np.arange(self.num_envs)
        if not self._tasks_fixed:
            self._resample_tasks(ids)
        obs = self._reset_copies(ids, options)
        self._t[:] = 0
        self._needs_reset[:] = False
        self._paused[:] = False
        self._started = True
        return obs, {}

    def _resample_tasks(self, ids: np.ndarray) -> None:
        for i in ids:
            self._tasks[i] = self.single_env._sample_task(self._rng)
        self._apply_tasks(ids)

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(
                f"actions must have leading dimension num_envs={self.num_envs}, "
                f"got shape {actions.shape}"
            )
        redo, paused = self._needs_reset, self._paused
        any_redo, any_paused = bool(redo.any()), bool(paused.any())
        active = ~(redo | paused) if any_redo or any_paused else None
        obs, reward, terminated, unstable, info = self._step_copies(actions, active)
        self._t += 1
        truncated = (self._t >= self.max_episode_steps) & ~terminated
        if any_redo:
            ids = np.flatnonzero(redo)
            if not self._tasks_fixed:
                self._resample_tasks(ids)
            obs[ids] = self._reset_copies(ids, {})
            _no_step(ids, reward, info, terminated, truncated, unstable)
            self._t[ids] = 0
        if any_paused:
            obs[paused] = 0
            _no_step(paused, reward, info, terminated, truncated, unstable)
        self._needs_reset = terminated | truncated
        info["sim_unstable"] = unstable
        return obs, reward, terminated, truncated, info

    def pause_ended(self) -> np.ndarray:
        """Stop simulating every copy whose episode ended on the last step, until the next
        ``reset()``: from the next ``step`` on it is neither stepped nor reset (its action is
        ignored) and reports a zero observation, reward 0 and ``terminated = truncated =
        False``. For callers that collect one episode per copy; the copies still running are
        stepped exactly as without the pause. Returns the paused copies' ids."""
        ids = np.flatnonzero(self._needs_reset)
        self._paused[ids] = True
        self._needs_reset[ids] = False
        return ids

    def reset_ended(self, keep_task: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reset now, not on the next step, every copy whose episode ended on the last step (a
        new task for each unless tasks were set, or ``keep_task[i]``: a bool per copy, for
        RL²'s trials of several episodes of one task); returns ``(ids, their first
        observations)``. The next ``step`` then steps those copies with the actions given."""
        ids = np.flatnonzero(self._needs_reset)
        if ids.size == 0:
            return ids, np.zeros((0, *self.single_observation_space.shape), np.float32)
        if not self._tasks_fixed:
            new = ids if keep_task is None else ids[~np.asarray(keep_task, bool)[ids]]
            if new.size:
                self._resample_tasks(new)
        obs = self._reset_copies(ids, {})
        self._t[ids] = 0
        self._needs_reset[ids] = False
        return ids, obs

    # ------------------------------------------------------------------ hooks
    def _apply_tasks(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _reset_copies(self, ids: np.ndarray, options: dict) -> np.ndarray:
        raise NotImplementedError

    def _step_copies(self, actions: np.ndarray, active: np.ndarray | None):
        raise NotImplementedError
