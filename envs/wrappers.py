"""Gymnasium wrappers over any metarl env: the task-oracle baseline and RL² trials.

Both wrap an env made by ``gymnasium.make("metarl/<Name>-v0", ...)`` (or a bare family instance)
and reach the task API through ``env.unwrapped``. Each is an ordinary ``gymnasium.Wrapper``, so it
can be given on its own to Stable-Baselines3 or any Gymnasium learner::

    import envs, gymnasium
    from envs import RL2Trial, TaskInObservation

    oracle = TaskInObservation(gymnasium.make("metarl/HalfCheetahVel-v0"))
    obs, info = oracle.reset(seed=0)          # obs = [cheetah obs (17), velocity (1)]

    rl2 = RL2Trial(gymnasium.make("metarl/Navigation2D-v0"), episodes_per_trial=2)
    obs, info = rl2.reset(seed=0)             # obs = [pos (2), prev action (2), prev reward, done]
    # one rl2 episode (a trial) = 2 inner episodes of one task; it ends with truncated=True

* :class:`TaskInObservation` (the MAML paper's "oracle"): the current task's parameters are
  appended to every observation, flattened in the order of ``task_params`` (vector parameters
  row-major, shapes from ``task_shapes()``). The appended part's bounds are the parameters' valid
  ranges. The task is read with ``get_task()`` after each inner reset, so it is right whether it
  was set with ``set_task``, passed as ``reset(options={"task": ...})`` or drawn by the env; a
  task changed mid-episode through the wrapper's :meth:`~TaskInObservation.set_task` shows at
  once, one changed through ``env.unwrapped.set_task`` from the next reset.
* :class:`RL2Trial` (RL², Duan et al. 2016; Wang et al. 2016): one wrapper episode is a *trial*
  of ``episodes_per_trial`` inner episodes of one task. See its docstring for the observation
  layout, the task choice and the ``info`` keys. :func:`rl2_observation_space` and
  :func:`rl2_previous_actions` give its observation space and action encoding to code that runs
  many trials at once (``metarl.rl.sb3_vec_env`` over a batched env).

Observations of both wrappers are float32 ``Box`` vectors: a multi-dimensional ``Box`` inner
observation is flattened row-major and a float64 one (MuJoCo families) is cast to float32. A
non-``Box`` observation space raises ``ValueError`` (wrap it first, e.g. with Gymnasium's
``FlattenObservation``), as does an env whose ``unwrapped`` has no metarl task API.

kwargs:

=================== ======= ================================================================
name                default meaning
=================== ======= ================================================================
episodes_per_trial  (none)  ``RL2Trial`` only: inner episodes per trial (int >= 1)
=================== ======= ================================================================

Version history: v0, first version.
"""

from __future__ import annotations

import copy
import math
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils import RecordConstructorArgs

_TASK_API = ("task_params", "task_shapes", "sample_tasks", "set_task", "get_task", "validate_task")
# spawn key of the trial-task stream, so that reset(seed=s) gives the wrapper a stream independent
# of the inner env's (both are seeded with s); b"RL2" as an int
_TRIAL_STREAM = 0x524C32


def _task_env(env: gymnasium.Env, wrapper: str) -> Any:
    """``env.unwrapped`` if it has the metarl task API, else a ``ValueError`` naming the fix."""
    base = env.unwrapped
    missing = [name for name in _TASK_API if not hasattr(base, name)]
    if missing:
        raise ValueError(
            f"{wrapper} needs a metarl task env (env.unwrapped with the task API: "
            f"{', '.join(_TASK_API)}); {type(base).__name__} lacks {missing}. Make the env with "
            f"gymnasium.make('metarl/<Name>-v0'); ids: envs.registered_ids()"
        )
    return base


def _box_observation_space(space: spaces.Space, wrapper: str) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise ValueError(
            f"{wrapper} appends to a Box observation, but this env's observation space is "
            f"{space} ({type(space).__name__}); wrap the env in a Box-observation wrapper first, "
            f"e.g. gymnasium.wrappers.FlattenObservation(env)"
        )
    return space


def _as_f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1)


def _task_layout(base: Any) -> list[tuple[str, int]]:
    """(name, number of values) of each task parameter, in ``task_params`` order."""
    shapes = base.task_shapes()
    return [(p.name, math.prod(shapes[p.name])) for p in base.task_params]


def _flatten_task(task: dict, layout: list[tuple[str, int]]) -> np.ndarray:
    parts = []
    for name, size in layout:
        value = np.asarray(task[name], dtype=np.float64).reshape(-1)
        if value.size != size:  # a task that passed validate_task always fits
            raise ValueError(f"task[{name!r}] has {value.size} values, expected {size}")
        parts.append(value)
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


class TaskInObservation(gymnasium.Wrapper, RecordConstructorArgs):
    """Append the current task's parameters to the observation (the "oracle" baseline).

    Observation: ``concat(obs.ravel(), task vector)`` as float32, where the task vector holds
    ``task_params`` in order, each flattened row-major (``Navigation2D``: ``[x, y, goal_x,
    goal_y]``; ``TabularMDP``: ``[one-hot state, transitions (S*A*S), rewards (S*A)]``). Bounds:
    the inner observation's, then each parameter's ``[valid_low, valid_high]`` (may be infinite).

    ``sample_tasks``, ``set_task`` and ``get_task`` are forwarded to ``env.unwrapped``.
    :attr:`task_size` is the length of the appended part.
    """

    def __init__(self, env: gymnasium.Env):
        RecordConstructorArgs.__init__(self)
        gymnasium.Wrapper.__init__(self, env)
        name = type(self).__name__
        self._base = _task_env(env, name)
        inner = _box_observation_space(env.observation_space, name)
        self._layout = _task_layout(self._base)
        sizes = [size for _, size in self._layout]
        params = self._base.task_params
        task_low = [np.full(n, p.valid_low, np.float32) for p, n in zip(params, sizes)]
        task_high = [np.full(n, p.valid_high, np.float32) for p, n in zip(params, sizes)]
        low = np.concatenate([_as_f32(inner.low), *task_low])
        high = np.concatenate([_as_f32(inner.high), *task_high])
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.task_size = int(sum(size for _, size in self._layout))
        self._task_vector: np.ndarray | None = None

    def task_vector(self, task: dict) -> np.ndarray:
        """The part appended to the observation for ``task`` (float32, :attr:`task_size`)."""
        return _flatten_task(task, self._layout)

    def _observation(self, obs: Any) -> np.ndarray:
        if self._task_vector is None:
            raise ResetNeeded("TaskInObservation: call reset() before step()")
        return np.concatenate([_as_f32(obs), self._task_vector])

    def _read_task(self) -> None:
        task = self._base.get_task()
        self._task_vector = None if task is None else _flatten_task(task, self._layout)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._read_task()
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(obs), reward, terminated, truncated, info

    # ------------------------------------------------------------------ task API (forwarded)
    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        """``env.unwrapped.sample_tasks(n, rng)`` (default ``rng``: the env's ``np_random``)."""
        return self._base.sample_tasks(n, rng)

    def set_task(self, task: dict) -> None:
        """``env.unwrapped.set_task(task)``; the observation shows it from the next step on."""
        self._base.set_task(task)
        self._read_task()

    def get_task(self) -> dict | None:
        """``env.unwrapped.get_task()``: the current task (a copy) or None before any."""
        return self._base.get_task()


def rl2_observation_space(
    observation_space: spaces.Space, action_space: spaces.Space, wrapper: str = "RL2Trial"
) -> tuple[spaces.Box, dict[str, slice]]:
    """RL²'s observation space over an env's spaces, and its layout (:class:`RL2Trial`)::

        [inner obs (flattened), previous action, previous reward, done flag]

    Bounds: the inner observation's, the action box (a ``Discrete`` action: one-hot, [0, 1]),
    (-inf, inf), [0, 1]. ``ValueError`` for a non-``Box`` observation or an action space other
    than ``Box`` and ``Discrete``."""
    inner = _box_observation_space(observation_space, wrapper)
    if isinstance(action_space, spaces.Box):
        act_low, act_high = _as_f32(action_space.low), _as_f32(action_space.high)
    elif isinstance(action_space, spaces.Discrete):
        n = int(action_space.n)
        act_low, act_high = np.zeros(n, np.float32), np.ones(n, np.float32)
    else:
        raise ValueError(
            f"{wrapper} encodes the previous action of a Box or Discrete action space, got "
            f"{action_space} ({type(action_space).__name__}); wrap the env to give one of those "
            f"first"
        )
    obs_dim, act_dim = int(math.prod(inner.shape)), int(act_low.size)
    low = np.concatenate([_as_f32(inner.low), act_low, [-np.inf, 0.0]]).astype(np.float32)
    high = np.concatenate([_as_f32(inner.high), act_high, [np.inf, 1.0]]).astype(np.float32)
    layout = {
        "obs": slice(0, obs_dim),
        "prev_action": slice(obs_dim, obs_dim + act_dim),
        "prev_reward": slice(obs_dim + act_dim, obs_dim + act_dim + 1),
        "done": slice(obs_dim + act_dim + 1, obs_dim + act_dim + 2),
    }
    return spaces.Box(low, high, dtype=np.float32), layout


def rl2_previous_actions(action_space: spaces.Space, actions: Any) -> np.ndarray:
    """A batch of actions as RL²'s observation shows them: a ``Box`` action clipped to the box
    and flattened, a ``Discrete`` one one-hot; float32 ``(n, action size)``. ``actions`` has a
    leading batch dimension (``n`` integers for ``Discrete``)."""
    if isinstance(action_space, spaces.Discrete):
        a = np.asarray(actions)
        n = int(action_space.n)
        if a.ndim == 0 or a.size != a.shape[0] or not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"RL2Trial: a Discrete action is one integer, got {actions!r}")
        index = a.reshape(-1).astype(np.int64) - int(action_space.start)
        if np.any((index < 0) | (index >= n)):
            raise ValueError(f"RL2Trial: action {actions!r} is outside {action_space}")
        return np.eye(n, dtype=np.float32)[index]
    a = np.asarray(actions, dtype=np.float64).reshape(-1, *action_space.shape)
    clipped = np.clip(a, action_space.low, action_space.high)
    return clipped.reshape(len(a), -1).astype(np.float32)


class RL2Trial(gymnasium.Wrapper, RecordConstructorArgs):
    """One episode = a trial of ``episodes_per_trial`` inner episodes of one task (RL²).

    **Task of a trial**, chosen at ``reset``, in this order: ``options["task"]`` (this trial only);
    else the task given to :meth:`set_task` (every trial until :meth:`clear_task`); else a fresh
    one, ``sample_tasks(1, self.np_random)``. The inner env is reset with that task at the start
    of the trial and keeps it (a task passed by reset options stays fixed in a metarl env) for
    the trial's other inner episodes. Other ``options`` keys (``"position"``, ``"qpos"``, ...)
    go to every inner reset of the trial. A task set directly on ``env.unwrapped`` is overridden.

    **Observation** (float32, :attr:`observation_layout` gives the slices)::

        [inner obs (flattened), previous action, previous reward, done flag]

    previous action: a ``Box`` action clipped to the action box (flattened), a ``Discrete`` one
    one-hot; previous reward: the reward of the previous step; done flag: 1.0 on the first
    observation of an inner episode that follows an ended one, else 0.0. At the trial's start the
    previous action and reward are zeros. Bounds: the inner observation's, the action box (or
    [0, 1]), (-inf, inf), [0, 1].

    **Inner episode ends** (terminated or truncated, e.g. by the env's TimeLimit): the wrapper
    resets the inner env with the same task and returns the new episode's first observation
    (with the ended step's action and reward and done flag 1); ``step`` returns that step's real
    reward and ``terminated=False, truncated=False``. After the ``episodes_per_trial``-th end it
    returns the ended episode's last observation (done flag 1) and ``truncated=True``.

    Why truncated and never terminated: the trial's end is a time limit of the trial, like
    Gymnasium's ``TimeLimit``; an inner episode's termination is not the end of the trial, so
    value bootstrapping at those steps is not cut by the wrapper. (A learner that wants the
    finite-horizon return of the trial can treat the trial's end as terminal itself.)

    The wrapper adds no time limit: a trial lasts at most ``episodes_per_trial`` times the inner
    horizon (:attr:`trial_horizon`); an inner env that never ends gives an endless trial.

    **info** of every step: the inner step's info plus ``episode_in_trial`` (0-based index of the
    inner episode the step belonged to); at an inner episode's end also ``inner_episode_return``,
    ``inner_episode_length``, ``inner_terminated`` and ``inner_final_observation`` (the inner
    env's own last observation). Reset's info: the inner reset's plus ``episode_in_trial = 0``.

    **Seeding**: ``reset(seed=s)`` seeds the inner env with ``s`` and the wrapper's
    ``np_random`` (which draws trial tasks) with a stream derived from ``s``; the same seed and
    actions give the same trial. Unseeded, the wrapper's stream starts from fresh entropy.
    """

    def __init__(self, env: gymnasium.Env, episodes_per_trial: int):
        RecordConstructorArgs.__init__(self, episodes_per_trial=episodes_per_trial)
        gymnasium.Wrapper.__init__(self, env)
        name = type(self).__name__
        if (
            not isinstance(episodes_per_trial, (int, np.integer))
            or isinstance(episodes_per_trial, (bool, np.bool_))
            or episodes_per_trial < 1
        ):
            raise ValueError(
                f"{name}: episodes_per_trial must be an int >= 1 (inner episodes per trial; RL² "
                f"used 2 for MDPs and up to 500 for bandits), got {episodes_per_trial!r}"
            )
        self.episodes_per_trial = int(episodes_per_trial)
        self._base = _task_env(env, name)
        self.observation_space, self.observation_layout = rl2_observation_space(
            env.observation_space, env.action_space, name
        )
        layout = self.observation_layout["prev_action"]
        self._act_dim = layout.stop - layout.start
        self._fixed_task: dict | None = None
        self._trial_rng: np.random.Generator | None = None
        self._trial_task: dict | None = None
        self._inner_options: dict[str, Any] = {}
        self._episode = 0
        self._episode_return = 0.0
        self._episode_length = 0
        self._running = False

    # ------------------------------------------------------------------ properties
    @property
    def np_random(self) -> np.random.Generator:
        """The wrapper's own generator (draws trial tasks); seeded by ``reset(seed=...)``."""
        if self._trial_rng is None:
            self._trial_rng = np.random.default_rng()
        return self._trial_rng

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self._trial_rng = value

    @property
    def trial_horizon(self) -> int | None:
        """``episodes_per_trial`` times the inner TimeLimit, or None if the env has none."""
        spec = self.env.spec
        steps = None if spec is None else spec.max_episode_steps
        return None if steps is None else self.episodes_per_trial * int(steps)

    # ------------------------------------------------------------------ task API
    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        """``env.unwrapped.sample_tasks(n, rng)``; default ``rng``: the wrapper's ``np_random``."""
        return self._base.sample_tasks(n, self.np_random if rng is None else rng)

    def set_task(self, task: dict) -> None:
        """Use ``task`` for every trial from the next ``reset`` on (until :meth:`clear_task`)."""
        self._fixed_task = self._base.validate_task(task)

    def clear_task(self) -> None:
        """Forget the task of :meth:`set_task`: later trials draw fresh tasks again."""
        self._fixed_task = None

    def get_task(self) -> dict | None:
        """The running trial's task (the inner env's), else the task of :meth:`set_task`."""
        if self._trial_task is not None:
            return self._base.get_task()
        return copy.deepcopy(self._fixed_task)

    # ------------------------------------------------------------------ reset / step
    def _encode_action(self, action: Any) -> np.ndarray:
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            a = np.asarray(action)
            if a.size != 1:
                raise ValueError(f"RL2Trial: a Discrete action is one integer, got {action!r}")
            return rl2_previous_actions(space, a.reshape(1))[0]
        return rl2_previous_actions(space, np.asarray(action)[None])[0]

    def _observation(self, obs: Any, prev_action: np.ndarray, prev_reward: float, done: bool):
        return np.concatenate(
            [_as_f32(obs), prev_action, np.array([prev_reward, float(done)], np.float32)]
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
                raise ValueError(f"RL2Trial: seed must be a non-negative int, got {seed!r}")
            sequence = np.random.SeedSequence(int(seed), spawn_key=(_TRIAL_STREAM,))
            self._trial_rng = np.random.Generator(np.random.PCG64(sequence))
        options = dict(options or {})
        task = options.pop("task", None)
        if task is None:
            task = self._fixed_task
        if task is None:
            task = self._base.sample_tasks(1, self.np_random)[0]
        self._inner_options = options
        obs, info = self.env.reset(seed=seed, options={**options, "task": task})
        self._trial_task = self._base.get_task()
        self._episode, self._episode_return, self._episode_length = 0, 0.0, 0
        self._running = True
        info = dict(info)
        info["episode_in_trial"] = 0
        return self._observation(obs, np.zeros(self._act_dim, np.float32), 0.0, False), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if not self._running:
            raise ResetNeeded(
                "RL2Trial: call reset() to start a trial (before the first step and after a trial "
                "ended with truncated=True)"
            )
        prev_action = self._encode_action(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["episode_in_trial"] = self._episode
        self._episode_return += float(reward)
        self._episode_length += 1
        if not (terminated or truncated):
            return (
                self._observation(obs, prev_action, float(reward), False),
                reward,
                False,
                False,
                info,
            )
        info["inner_episode_return"] = self._episode_return
        info["inner_episode_length"] = self._episode_length
        info["inner_terminated"] = bool(terminated)
        info["inner_final_observation"] = np.array(obs, copy=True)
        self._episode += 1
        self._episode_return, self._episode_length = 0.0, 0
        if self._episode >= self.episodes_per_trial:
            self._running = False
            return (
                self._observation(obs, prev_action, float(reward), True),
                reward,
                False,
                True,
                info,
            )
        obs, _ = self.env.reset(options=dict(self._inner_options))
        return self._observation(obs, prev_action, float(reward), True), reward, False, False, info
