"""Classic-control dynamics families: CartPole and Pendulum with per-task physics.

* ``CartPoleDynamics`` (Gymnasium ``CartPoleEnv``, rewards/termination unchanged): task
  ``{"gravity", "masscart", "masspole", "length", "motor_gain"}`` (``length`` is the pole's half
  length, as in Gymnasium; ``motor_gain`` multiplies the push of 10 N, so -1 is a motor wired
  backwards and 0.5 a weak one). Training ranges: gravity U[4.9, 14.7], masscart U[0.5, 2],
  masspole U[0.05, 0.2], length U[0.25, 1], motor_gain always 1 (drawn from the choices {1};
  ``task_range={"motor_gain": [-1, 1]}`` draws -1 or 1: a policy has to find out which way
  its motor pushes, by adapting or from how the cart responds within an episode); valid:
  gravity [0, 100], masses and length [1e-3, 100], motor_gain [-10, 10]. Horizon 500.
* ``PendulumDynamics`` (Gymnasium ``PendulumEnv``): task ``{"mass", "length", "gravity"}``;
  training mass U[0.5, 2], length U[0.5, 2], gravity U[5, 15]; valid mass/length [1e-3, 100],
  gravity [0, 100]. Horizon 200.

Defaults (task not set) are sampled per reset like every family. kwargs: those of the Gymnasium
envs (``render_mode``, ``sutton_barto_reward`` for CartPole). Batched numpy versions
(``CartPoleDynamicsVectorEnv``, ``PendulumDynamicsVectorEnv``) accept per-copy initial states via
``reset(options={"states": (num_envs, 4 or 2)})``; the single envs via
``reset(options={"state": [...]})``.

Deviations: none in the dynamics; the parameters are the only change.

Version history: v0, first version; ``motor_gain`` added to CartPole's task (its default, 1,
draws no random number, so the tasks drawn before it was added are drawn unchanged).
"""

from __future__ import annotations

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv, angle_normalize

from envs.base import TaskEnvMixin, TaskParam, stack_task_values
from envs.vector_base import BatchedTaskVectorEnv


class CartPoleDynamicsEnv(TaskEnvMixin, CartPoleEnv):
    """CartPole with per-task gravity, masses and pole length."""

    task_kind = "dynamics"
    task_params = (
        TaskParam("gravity", 4.9, 14.7, valid_low=0.0, valid_high=100.0, nominal=9.8),
        TaskParam("masscart", 0.5, 2.0, valid_low=1e-3, valid_high=100.0, nominal=1.0),
        TaskParam("masspole", 0.05, 0.2, valid_low=1e-3, valid_high=100.0, nominal=0.1),
        TaskParam("length", 0.25, 1.0, valid_low=1e-3, valid_high=100.0, nominal=0.5),
        TaskParam(
            "motor_gain", 1.0, 1.0, valid_low=-10.0, valid_high=10.0, choices=(1.0,), nominal=1.0
        ),
    )
    horizon = 500
    #: Gymnasium's push, in newtons, that ``motor_gain`` scales
    push = 10.0

    def _apply_task(self, task):
        self.force_mag = self.push * task["motor_gain"]
        self.gravity = task["gravity"]
        self.masscart = task["masscart"]
        self.masspole = task["masspole"]
        self.length = task["length"]
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length

    def reset(self, *, seed=None, options=None):
        self._prepare_reset(seed, options)
        obs, info = super().reset(seed=None)
        if options and options.get("state") is not None:
            self.state = np.asarray(options["state"], dtype=np.float64).copy()
            obs = np.array(self.state, dtype=np.float32)
        info["task"] = self.get_task()
        return obs, info

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        info["task"] = self.get_task()
        return obs, r, term, trunc, info


class PendulumDynamicsEnv(TaskEnvMixin, PendulumEnv):
    """Pendulum with per-task mass, length and gravity."""

    task_kind = "dynamics"
    task_params = (
        TaskParam("mass", 0.5, 2.0, valid_low=1e-3, valid_high=100.0, nominal=1.0),
        TaskParam("length", 0.5, 2.0, valid_low=1e-3, valid_high=100.0, nominal=1.0),
        TaskParam("gravity", 5.0, 15.0, valid_low=0.0, valid_high=100.0, nominal=10.0),
    )
    horizon = 200

    def _apply_task(self, task):
        self.m, self.l, self.g = task["mass"], task["length"], task["gravity"]

    def reset(self, *, seed=None, options=None):
        self._prepare_reset(seed, options)
        obs, info = super().reset(seed=None)
        if options and options.get("state") is not None:
            self.state = np.asarray(options["state"], dtype=np.float64).copy()
            obs = self._get_obs()
        info["task"] = self.get_task()
        return obs, info

    def step(self, u):
        obs, r, term, trunc, info = super().step(u)
        info["task"] = self.get_task()
        return obs, float(r), term, trunc, info


class CartPoleDynamicsVectorEnv(BatchedTaskVectorEnv):
    """``num_envs`` CartPoles in numpy, one task per copy."""

    def __init__(self, num_envs, max_episode_steps=None, **kwargs):
        super().__init__(CartPoleDynamicsEnv(**kwargs), num_envs, max_episode_steps)
        self._p = {p.name: np.ones(self.num_envs) for p in CartPoleDynamicsEnv.task_params}
        self.state = np.zeros((self.num_envs, 4))

    def _apply_tasks(self, ids):
        tasks = [self._tasks[i] for i in ids]
        for k in self._p:
            self._p[k][ids] = stack_task_values(tasks, k)

    def _reset_copies(self, ids, options):
        st = options.get("states")
        if st is None:
            self.state[ids] = self._rng.uniform(-0.05, 0.05, (len(ids), 4))
        else:
            self.state[ids] = np.asarray(st, dtype=np.float64)[ids]
        return self.state[ids].astype(np.float32)

    def _step_copies(self, actions, active):
        e, p = self.single_env, self._p
        x, x_dot, th, th_dot = self.state.T
        force = np.where(np.asarray(actions) == 1, 1.0, -1.0) * e.push * p["motor_gain"]
        cos, sin = np.cos(th), np.sin(th)
        total = p["masspole"] + p["masscart"]
        pml = p["masspole"] * p["length"]
        temp = (force + pml * np.square(th_dot) * sin) / total
        thacc = (p["gravity"] * sin - cos * temp) / (
            p["length"] * (4.0 / 3.0 - p["masspole"] * np.square(cos) / total)
        )
        xacc = temp - pml * thacc * cos / total
        new = np.stack(
            [x + e.tau * x_dot, x_dot + e.tau * xacc, th + e.tau * th_dot, th_dot + e.tau * thacc],
            axis=1,
        )
        if active is not None:
            new[~active] = self.state[~active]
        self.state = new
        terminated = (np.abs(new[:, 0]) > e.x_threshold) | (
            np.abs(new[:, 2]) > e.theta_threshold_radians
        )
        unstable = ~np.isfinite(new).all(axis=1)
        reward = np.ones(self.num_envs)
        return new.astype(np.float32), reward, terminated | unstable, unstable, {}


class PendulumDynamicsVectorEnv(BatchedTaskVectorEnv):
    """``num_envs`` Pendulums in numpy, one task per copy."""

    def __init__(self, num_envs, max_episode_steps=None, **kwargs):
        super().__init__(PendulumDynamicsEnv(**kwargs), num_envs, max_episode_steps)
        self._p = {p.name: np.ones(self.num_envs) for p in PendulumDynamicsEnv.task_params}
        self.state = np.zeros((self.num_envs, 2))

    def _apply_tasks(self, ids):
        tasks = [self._tasks[i] for i in ids]
        for k in self._p:
            self._p[k][ids] = stack_task_values(tasks, k)

    def _obs(self, st):
        return np.stack([np.cos(st[:, 0]), np.sin(st[:, 0]), st[:, 1]], axis=1).astype(np.float32)

    def _reset_copies(self, ids, options):
        st = options.get("states")
        if st is None:
            self.state[ids] = self._rng.uniform([-np.pi, -1.0], [np.pi, 1.0], (len(ids), 2))
        else:
            self.state[ids] = np.asarray(st, dtype=np.float64)[ids]
        return self._obs(self.state[ids])

    def _step_copies(self, actions, active):
        e, p = self.single_env, self._p
        th, thdot = self.state.T
        u = np.clip(np.asarray(actions, dtype=np.float64)[:, 0], -e.max_torque, e.max_torque)
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
        m, ln, g = p["mass"], p["length"], p["gravity"]
        newthdot = thdot + (3 * g / (2 * ln) * np.sin(th) + 3.0 / (m * ln**2) * u) * e.dt
        newthdot = np.clip(newthdot, -e.max_speed, e.max_speed)
        new = np.stack([th + newthdot * e.dt, newthdot], axis=1)
        if active is not None:
            new[~active] = self.state[~active]
        self.state = new
        unstable = ~np.isfinite(new).all(axis=1)
        return self._obs(new), -costs, unstable.copy(), unstable, {}
