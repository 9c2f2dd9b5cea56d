"""Small discrete families: k-armed Bernoulli bandit and random tabular MDPs (RL^2-style).

* ``Bandit``: task ``{"probs": [k]}`` (arm success probabilities), training U[0, 1] each, valid
  [0, 1]. Action: ``Discrete(k)``; reward 1 with probability ``probs[a]`` else 0, drawn from the
  env's ``np_random``. Observation: a constant ``[0.0]`` (float32, shape (1,)): all information is
  in the rewards, so a meta-learner must use its history. Horizon 100 (pulls per episode).
  kwargs: ``k`` (default 5).
* ``TabularMDP``: task ``{"transitions": [S][A][S], "rewards": [S][A]}``; transitions sampled
  from a flat Dirichlet per (s, a), rewards U[0, 1]. Valid: transition rows in [0, 1] summing to
  1 (within 1e-6), rewards in [-100, 100]. Start state 0; observation one-hot state (float32,
  shape (S,)); action ``Discrete(A)``; reward ``rewards[s][a]`` (deterministic expected reward:
  a deviation from RL^2, which drew Gaussian rewards, so that single and batched envs can be
  compared exactly). Horizon 10. kwargs: ``num_states`` (10), ``num_actions`` (5).

Batched numpy versions (``BanditVectorEnv``, ``TabularMDPVectorEnv``) draw all copies' random
numbers in one call; they are not bit-identical to the single env's RNG stream, only equal in
distribution (and exactly equal for deterministic tasks: probabilities 0/1, one-hot transitions).

Version history: v0, first version.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.base import TaskEnvMixin, TaskParam, _to_python, stack_task_values
from envs.vector_base import BatchedTaskVectorEnv


class BanditEnv(TaskEnvMixin, gymnasium.Env):
    """k-armed Bernoulli bandit (see module docstring)."""

    metadata = {"render_modes": []}
    task_kind = "goal"
    task_params = (TaskParam("probs", 0.0, 1.0, valid_low=0.0, valid_high=1.0, shape=None),)
    horizon = 100

    def __init__(self, k: int = 5, render_mode=None):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.k)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._probs = np.full(self.k, 0.5)

    def task_shapes(self):
        return {"probs": (self.k,)}

    def _apply_task(self, task):
        self._probs = np.asarray(task["probs"], dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        self._prepare_reset(seed, options)
        return np.zeros(1, np.float32), {"task": self.get_task()}

    def step(self, action):
        reward = float(self.np_random.random() < self._probs[int(action)])
        return np.zeros(1, np.float32), reward, False, False, {"task": self.get_task()}


class TabularMDPEnv(TaskEnvMixin, gymnasium.Env):
    """Random tabular MDP (see module docstring)."""

    metadata = {"render_modes": []}
    task_kind = "dynamics"
    task_params = (
        TaskParam(
            "transitions",
            0.0,
            1.0,
            valid_low=0.0,
            valid_high=1.0,
            shape=None,
            doc="P[s][a][s'] ~ Dirichlet(1)",
        ),
        TaskParam("rewards", 0.0, 1.0, valid_low=-100.0, valid_high=100.0, shape=None),
    )
    horizon = 10

    def __init__(self, num_states: int = 10, num_actions: int = 5, render_mode=None):
        if int(num_states) < 1 or int(num_actions) < 1:
            raise ValueError("num_states and num_actions must be >= 1")
        self.S, self.A = int(num_states), int(num_actions)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.A)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.S,), dtype=np.float32)
        self._P = np.full((self.S, self.A, self.S), 1.0 / self.S)
        self._R = np.zeros((self.S, self.A))
        self._s = 0

    def task_shapes(self):
        return {"transitions": (self.S, self.A, self.S), "rewards": (self.S, self.A)}

    def _sample_task(self, rng):
        P = rng.dirichlet(np.ones(self.S), size=(self.S, self.A))
        return {
            "transitions": _to_python(P),
            "rewards": _to_python(rng.uniform(0.0, 1.0, (self.S, self.A))),
        }

    def _validate_extra(self, task):
        P = np.asarray(task["transitions"])
        if np.any(np.abs(P.sum(axis=-1) - 1.0) > 1e-6):
            raise ValueError(
                "TabularMDP: each task['transitions'][s][a] must sum to 1 (within 1e-6)"
            )

    def _apply_task(self, task):
        self._P = np.asarray(task["transitions"], dtype=np.float64)
        self._cdf = np.cumsum(self._P, axis=-1)
        self._R = np.asarray(task["rewards"], dtype=np.float64)

    def _obs(self):
        o = np.zeros(self.S, np.float32)
        o[self._s] = 1.0
        return o

    def reset(self, *, seed=None, options=None):
        self._prepare_reset(seed, options)
        self._s = int((options or {}).get("state", 0))
        return self._obs(), {"task": self.get_task()}

    def step(self, action):
        a = int(action)
        reward = float(self._R[self._s, a])
        u = self.np_random.random()
        self._s = min(int(np.sum(u >= self._cdf[self._s, a])), self.S - 1)
        return self._obs(), reward, False, False, {"task": self.get_task()}


class BanditVectorEnv(BatchedTaskVectorEnv):
    def __init__(self, num_envs, max_episode_steps=None, **kwargs):
        super().__init__(BanditEnv(**kwargs), num_envs, max_episode_steps)
        self._probs = np.full((self.num_envs, self.single_env.k), 0.5)

    def _apply_tasks(self, ids):
        self._probs[ids] = stack_task_values([self._tasks[i] for i in ids], "probs")

    def _reset_copies(self, ids, options):
        return np.zeros((len(ids), 1), np.float32)

    def _step_copies(self, actions, active):
        a = np.asarray(actions).astype(np.int64)
        p = self._probs[np.arange(self.num_envs), a]
        reward = (self._rng.random(self.num_envs) < p).astype(np.float64)
        z = np.zeros(self.num_envs, dtype=bool)
        return np.zeros((self.num_envs, 1), np.float32), reward, z, z.copy(), {}


class TabularMDPVectorEnv(BatchedTaskVectorEnv):
    def __init__(self, num_envs, max_episode_steps=None, **kwargs):
        super().__init__(TabularMDPEnv(**kwargs), num_envs, max_episode_steps)
        e = self.single_env
        self._cdf = np.zeros((self.num_envs, e.S, e.A, e.S))
        self._R = np.zeros((self.num_envs, e.S, e.A))
        self._s = np.zeros(self.num_envs, dtype=np.int64)
        self._eye = np.eye(e.S, dtype=np.float32)

    def _apply_tasks(self, ids):
        tasks = [self._tasks[i] for i in ids]
        self._cdf[ids] = np.cumsum(stack_task_values(tasks, "transitions"), axis=-1)
        self._R[ids] = stack_task_values(tasks, "rewards")

    def _reset_copies(self, ids, options):
        st = options.get("states")
        self._s[ids] = 0 if st is None else np.asarray(st, dtype=np.int64)[ids]
        return self._eye[self._s[ids]]

    def _step_copies(self, actions, active):
        n, S = self.num_envs, self.single_env.S
        a = np.asarray(actions).astype(np.int64)
        rows = np.arange(n)
        reward = self._R[rows, self._s, a]
        cdf = self._cdf[rows, self._s, a]
        u = self._rng.random(n)
        nxt = np.minimum(np.sum(u[:, None] >= cdf, axis=1), S - 1)
        self._s = np.where(active, nxt, self._s) if active is not None else nxt
        z = np.zeros(n, dtype=bool)
        return self._eye[self._s], reward, z, z.copy(), {}
