"""Dynamics families: HalfCheetah, Hopper and Walker2d with randomised physical parameters.

As in the rand_param_envs used by ProMP and PEARL: every element of ``body_mass``,
``body_inertia``, ``dof_damping`` and ``geom_friction`` is multiplied by ``1.5 ** u`` with
``u ~ U[-3, 3]`` (the log-scale limit 3). The task holds the exponents ``u`` per element::

    {"body_mass": [nbody], "body_inertia": [[nbody][3]],
     "dof_damping": [nv], "geom_friction": [[ngeom][3]]}

Sampling range U[-3, 3]; valid range [-10, 10] (any exponent gives a positive scale; beyond
1.5^10 ~ 58 the simulation is nonsense). After writing the fields ``mj_setConst`` runs (single
env) or ``Batch.set_const`` (batched), so derived constants follow.

Subclasses of Gymnasium's ``HalfCheetah-v5``, ``Hopper-v5``, ``Walker2d-v5`` with their kwargs
and rewards unchanged (forward velocity, healthy reward, control cost at the v5 defaults; Hopper
and Walker2d terminate when unhealthy). Horizon 200 (PEARL used 200).

Deviations: rewards are the v5 ones, not rand_param_envs' (which used older Gym rewards).

Version history: v0, first version.
"""

from __future__ import annotations

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from envs.base import TaskParam
from envs.mujoco_base import MujocoTaskMixin

FIELDS = ("body_mass", "body_inertia", "dof_damping", "geom_friction")


class _RandParamsMixin(MujocoTaskMixin):
    task_kind = "dynamics"
    task_params = tuple(
        TaskParam(
            f,
            -3.0,
            3.0,
            valid_low=-10.0,
            valid_high=10.0,
            shape=None,
            doc=f"log_1.5 scale of {f}",
            nominal=0.0,
        )
        for f in FIELDS
    )
    horizon = 200

    def task_shapes(self):
        return {f: tuple(getattr(self._orig_model(), f).shape) for f in FIELDS}

    def _orig_model(self):
        if "_orig_fields" not in self.__dict__:
            self._orig_fields = {f: getattr(self.model, f).copy() for f in FIELDS}
        return _Fields(self._orig_fields)

    def _model_fields(self, tasks):
        orig = self._orig_model()
        return {
            f: getattr(orig, f)[None] * 1.5 ** np.asarray([t[f] for t in tasks], dtype=np.float64)
            for f in FIELDS
        }

    def _v_obs(self, qpos, qvel, cfrc, sensordata):
        start = 1 if self._exclude_current_positions_from_observation else 0
        return np.concatenate([qpos[:, start:], self._obs_vel(qvel)], axis=1)

    def _obs_vel(self, qvel):
        return qvel

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        ctrl = self._v_ctrl_cost(action)
        bonus = healthy * getattr(self, "_healthy_reward", 0.0)
        return self._forward_reward_weight * vel[:, 0] + bonus - ctrl


class _Fields:
    def __init__(self, d):
        self.__dict__.update(d)


class HalfCheetahRandParamsEnv(_RandParamsMixin, HalfCheetahEnv):
    """HalfCheetah-v5 with randomised masses, inertias, damping and friction."""


class HopperRandParamsEnv(_RandParamsMixin, HopperEnv):
    """Hopper-v5 with randomised masses, inertias, damping and friction."""

    _terminates = True

    def _obs_vel(self, qvel):
        return np.clip(qvel, -10, 10)

    def _v_healthy(self, qpos, qvel):
        state = np.concatenate([qpos, qvel], axis=1)[:, 2:]
        lo, hi = self._healthy_state_range
        zlo, zhi = self._healthy_z_range
        alo, ahi = self._healthy_angle_range
        z, angle = qpos[:, 1], qpos[:, 2]
        return (
            np.all((lo < state) & (state < hi), axis=1)
            & (zlo < z)
            & (z < zhi)
            & (alo < angle)
            & (angle < ahi)
        )


class Walker2dRandParamsEnv(_RandParamsMixin, Walker2dEnv):
    """Walker2d-v5 with randomised masses, inertias, damping and friction."""

    _terminates = True

    def _obs_vel(self, qvel):
        return np.clip(qvel, -10, 10)

    def _v_healthy(self, qpos, qvel):
        zlo, zhi = self._healthy_z_range
        alo, ahi = self._healthy_angle_range
        z, angle = qpos[:, 1], qpos[:, 2]
        return (zlo < z) & (z < zhi) & (alo < angle) & (angle < ahi)
