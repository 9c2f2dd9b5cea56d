"""2D point navigation (MAML paper section 5.2), single env and batched numpy env.

The agent is a point starting at (0, 0); each task is a goal ``g ~ U[-0.5, 0.5]^2``. An action is a
displacement, clipped to [-0.1, 0.1] per axis; the reward is ``-||s' - g||_2`` (plain distance,
as in the MAML code, of the position after the move); the episode terminates once within 0.01
of the goal. Observation: the position (2-d, float32). Horizon 100 (``max_episode_steps``).

Task: ``{"goal": [x, y]}``; training range U[-0.5, 0.5] per axis, valid range [-10, 10].

kwargs:

============== ======= =====================================================
name           default meaning
============== ======= =====================================================
max_action     0.1     per-axis clip of the displacement
goal_radius    0.01    termination distance
============== ======= =====================================================

Batched: ``reset(options={"positions": (num_envs, 2)})`` sets per-copy start positions.

Deviations from the MAML code: none known (the action space is Box(-0.1, 0.1) so samplers know
the scale; out-of-box actions are still clipped).

Version history: v0, first version.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.base import TaskEnvMixin, TaskParam, stack_task_values
from envs.vector_base import BatchedTaskVectorEnv


class Navigation2DEnv(TaskEnvMixin, gymnasium.Env):
    """Point navigation to a per-task goal (see module docstring)."""

    metadata = {"render_modes": []}
    task_kind = "goal"
    task_params = (
        TaskParam(
            "goal", -0.5, 0.5, valid_low=-10.0, valid_high=10.0, shape=(2,), doc="goal position"
        ),
    )
    horizon = 100

    def __init__(self, max_action: float = 0.1, goal_radius: float = 0.01, render_mode=None):
        self.max_action = float(max_action)
        self.goal_radius = float(goal_radius)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(
            -self.max_action, self.max_action, shape=(2,), dtype=np.float32
        )
        self._goal = np.zeros(2)
        self._pos = np.zeros(2)

    def _apply_task(self, task: dict) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._prepare_reset(seed, options)
        pos = (options or {}).get("position")
        self._pos = np.zeros(2) if pos is None else np.asarray(pos, dtype=np.float64).copy()
        return self._pos.astype(np.float32), {"task": self.get_task()}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -self.max_action, self.max_action)
        self._pos = self._pos + a
        dist = float(np.linalg.norm(self._pos - self._goal))
        terminated = dist < self.goal_radius
        return self._pos.astype(np.float32), -dist, terminated, False, {"task": self.get_task()}


class Navigation2DVectorEnv(BatchedTaskVectorEnv):
    """``num_envs`` points stepped in numpy, one goal per copy."""

    def __init__(self, num_envs: int, max_episode_steps: int | None = None, **kwargs):
        super().__init__(Navigation2DEnv(**kwargs), num_envs, max_episode_steps)
        self._goal = np.zeros((self.num_envs, 2))
        self._pos = np.zeros((self.num_envs, 2))
        self._m = self.single_env.max_action

    def _apply_tasks(self, ids):
        self._goal[ids] = stack_task_values([self._tasks[i] for i in ids], "goal")

    def _reset_copies(self, ids, options):
        pos = options.get("positions")
        self._pos[ids] = 0.0 if pos is None else np.asarray(pos, dtype=np.float64)[ids]
        return self._pos[ids].astype(np.float32)

    def _step_copies(self, actions, active):
        a = np.clip(actions.astype(np.float64, copy=False), -self._m, self._m)
        if active is not None:
            a = a * active[:, None]
        self._pos += a
        dist = np.sqrt(np.sum((self._pos - self._goal) ** 2, axis=1))
        terminated = dist < self.single_env.goal_radius
        unstable = np.zeros(self.num_envs, dtype=bool)
        return self._pos.astype(np.float32), -dist, terminated, unstable, {}
