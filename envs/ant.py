"""Ant velocity, direction and goal tasks (MAML paper section 5.3).

Subclasses of Gymnasium's ``Ant-v5`` (all its kwargs: ``xml_file``, ``frame_skip``,
``ctrl_cost_weight``, ``contact_cost_weight``, ``healthy_z_range``, ``reset_noise_scale``,
``terminate_when_unhealthy``, ``include_cfrc_ext_in_observation``, ``render_mode``, ...). The
torso's velocity ``(v_x, v_y)`` is the finite difference of its ``xpos`` as in v5. With
``c = ctrl_cost_weight * ||a||^2 + contact_cost_weight * ||clip(cfrc_ext, -1, 1)||^2`` and
``h = healthy_reward`` (given while healthy):

* ``AntVel``: task ``{"velocity": v*}``, training U[0, 3], valid [-10, 10];
  reward ``-|v_x - v*| + 1 + h - c``.
* ``AntDir``: task ``{"direction": d}``, training {-1, +1}, valid [-1, 1];
  reward ``d * v_x + h - c``.
* ``AntGoal``: task ``{"goal": [x, y]}``, training U[-3, 3]^2 (ProMP's AntRandGoal: the disk of
  radius 3, ``task_range={"goal": {"radius": 3}}``), valid [-50, 50];
  reward ``-||xy_torso - g||_1 + b + h - c`` with ``b = goal_bonus`` (4, the MAML code's;
  ProMP's AntRandGoal: 0).

kwargs changed from ``Ant-v5``:

=================== ======= ===========================================================
name                default meaning
=================== ======= ===========================================================
ctrl_cost_weight    0.005   MAML: 0.5 * 1e-2 (v5: 0.5)
contact_cost_weight 5e-4    MAML: 0.5 * 1e-3 (same as v5)
healthy_reward      0.05    MAML's survive reward (v5: 1.0)
frame_skip          1       MAML code (v5: 5)
timestep            0.02    MAML code's RK4 step in seconds (v5's model: 0.01), so one env
                            step is 0.02 s and an episode 4 s (v5: 0.05 s and 10 s)
=================== ======= ===========================================================

New kwarg of AntVel and AntDir, for the MAML code's velocity:

=================== ======= ===========================================================
name                default meaning
=================== ======= ===========================================================
velocity            "root"  ``v_x`` of the reward: ``"root"`` is the torso's finite
                            difference (v5's); ``"com"`` the whole body's centre-of-mass
                            x velocity after the step (rllab's
                            ``get_body_comvel("torso")``, the MAML code's)
=================== ======= ===========================================================

Horizon 200; terminates when the torso z leaves ``healthy_z_range`` (0.2, 1.0) or the state is
not finite.

Deviations: observation is v5's 105-d one (qpos[2:], qvel, clipped cfrc_ext of the 13 non-world
bodies; MAML's rllab Ant had 111-d), and AntGoal's is 107-d: it keeps the torso's (x, y)
(``exclude_current_positions_from_observation=False``), as the MAML code's full ``qpos`` did.
``cfrc_ext`` is computed by MuJoCo inside the step through a probe sensor (``metarl_cfrc_probe``, a frame-acceleration sensor on the torso, added at load):
Ant uses RK4, so this is the value at the start of the last substep, whereas Gymnasium recomputes
it after the step with ``mj_rnePostConstraint``; we do it this way because ``mujoco.batch`` can
only produce the in-step value, and single and batched envs must agree. The contact cost is tiny
either way. By default ``v_x`` is the torso's finite difference and AntGoal's position the
torso's (the MAML code's ``get_body_comvel("torso")`` and ``get_body_com("torso")`` are the torso
subtree's centre-of-mass velocity and position, i.e. the whole body's; ``velocity="com"`` gives
the former), and the initial-state
noise is v5's (qpos U(-0.1, 0.1), qvel 0.1 N(0, 1); rllab: qpos 0.01 N(0, 1)).

Timing: the MAML code's. Its rllab ``ant.xml`` has ``<option timestep="0.02"
integrator="RK4"/>`` and no ``frame_skip`` numeric (rllab's ``MujocoEnv`` then steps once per
action), so an action acts for 0.02 s; v5 integrates 0.01 s steps five at a time (0.05 s). As
for HalfCheetah, where the timing was most of the gap to the paper, the task envs use the code's:
v5's model with its timestep set to 0.02 s and ``frame_skip`` 1 (``timestep=0.01,
frame_skip=5`` gives v5's). rllab's actuators (``ctrlrange`` +-150, gear 1) and v5's (+-1, gear
150) give the same torques for an action mapped from [-1, 1], and the control cost on the
normalised action is the code's.

Version history: v0, first version (timing changed from v5's to the MAML code's before any Ant
result was published; configs of earlier runs set ``timestep: 0.01, frame_skip: 5``; AntGoal
observes its (x, y) since 2026-12-03, before any AntGoal run was published; earlier runs set
``exclude_current_positions_from_observation: true``); ``velocity`` was added later with a
default that keeps the earlier behaviour.
"""

from __future__ import annotations

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.utils import EzPickle

from envs.base import TaskParam, is_finite_number, stack_task_values
from envs.mujoco_base import MujocoTaskMixin


class _AntTaskEnv(MujocoTaskMixin, AntEnv):
    horizon = 200
    _uses_xpos = True
    _uses_cfrc = True
    _terminates = True

    def __init__(
        self,
        ctrl_cost_weight: float = 0.005,
        contact_cost_weight: float = 5e-4,
        healthy_reward: float = 0.05,
        frame_skip: int = 1,
        timestep: float = 0.02,
        **kwargs,
    ):
        if not timestep > 0:
            raise ValueError(f"timestep must be > 0 seconds, got {timestep}")
        kw = dict(
            ctrl_cost_weight=ctrl_cost_weight,
            contact_cost_weight=contact_cost_weight,
            healthy_reward=healthy_reward,
            frame_skip=frame_skip,
            **kwargs,
        )
        super().__init__(**kw)
        self.model.opt.timestep = float(timestep)  # dt = timestep * frame_skip follows
        self.metadata = {**self.metadata, "render_fps": int(np.round(1.0 / self.dt))}
        EzPickle.__init__(self, timestep=timestep, **kw)
        mb = self._main_body
        self._body_id = (
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, mb)
            if isinstance(mb, str)
            else int(mb)
        )

    def _v_obs(self, qpos, qvel, cfrc, sensordata):
        start = 2 if self._exclude_current_positions_from_observation else 0
        parts = [qpos[:, start:], qvel]
        if self._include_cfrc_ext_in_observation:
            lo, hi = self._contact_force_range
            parts.append(np.clip(cfrc[:, 1:], lo, hi).reshape(len(qpos), -1))
        return np.concatenate(parts, axis=1)

    def _v_pos(self, qpos, xpos):
        return xpos[:, self._body_id, :2].copy()

    def _v_healthy(self, qpos, qvel):
        lo, hi = self._healthy_z_range
        finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
        z = qpos[:, 2]
        return finite & (z >= lo) & (z <= hi)

    def _costs_and_bonus(self, action, healthy, cfrc):
        lo, hi = self._contact_force_range
        n = len(action)
        ctrl = self._v_ctrl_cost(action)
        contact = self._contact_cost_weight * np.sum(
            np.square(np.clip(cfrc, lo, hi)).reshape(n, -1), axis=1
        )
        return healthy * self._healthy_reward - ctrl - contact


class _AntRunEnv(_AntTaskEnv):
    """AntVel and AntDir: rewards on the velocity, ``velocity="root"`` (the torso's finite
    difference, default) or ``"com"`` (the whole body's centre of mass, the MAML code's)."""

    def __init__(self, velocity: str = "root", **kwargs):
        self._use_com(velocity)
        super().__init__(**kwargs)
        EzPickle.__init__(self, velocity=velocity, **self._ezpickle_kwargs)


class AntVelEnv(_AntRunEnv):
    """Ant running at a target forward velocity (see module docstring)."""

    task_kind = "goal"
    task_params = (TaskParam("velocity", 0.0, 3.0, valid_low=-10.0, valid_high=10.0),)

    def _task_arrays(self, tasks):
        return {"velocity": stack_task_values(tasks, "velocity")}

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        return (
            -np.abs(vel[:, 0] - tarr["velocity"])
            + 1.0
            + self._costs_and_bonus(action, healthy, cfrc)
        )


class AntDirEnv(_AntRunEnv):
    """Ant running forward or backward (see module docstring)."""

    task_kind = "goal"
    task_params = (
        TaskParam("direction", -1.0, 1.0, valid_low=-1.0, valid_high=1.0, choices=(-1.0, 1.0)),
    )

    def _task_arrays(self, tasks):
        return {"direction": stack_task_values(tasks, "direction")}

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        return tarr["direction"] * vel[:, 0] + self._costs_and_bonus(action, healthy, cfrc)


class AntGoalEnv(_AntTaskEnv):
    """Ant walking to a 2-D goal position (see module docstring). Observes its own (x, y), as the
    MAML code's and ProMP's goal envs do (v5 leaves them out): a policy that cannot see where it is
    cannot steer to a goal."""

    task_kind = "goal"
    task_params = (TaskParam("goal", -3.0, 3.0, valid_low=-50.0, valid_high=50.0, shape=(2,)),)

    def __init__(
        self,
        goal_bonus: float = 4.0,
        exclude_current_positions_from_observation: bool = False,
        **kwargs,
    ):
        if not is_finite_number(goal_bonus):
            raise ValueError(f"goal_bonus must be a finite number, got {goal_bonus!r}")
        self._goal_bonus = float(goal_bonus)
        super().__init__(
            exclude_current_positions_from_observation=exclude_current_positions_from_observation,
            **kwargs,
        )
        EzPickle.__init__(self, goal_bonus=goal_bonus, **self._ezpickle_kwargs)

    def _task_arrays(self, tasks):
        return {"goal": stack_task_values(tasks, "goal")}

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        return (
            -np.sum(np.abs(pos - tarr["goal"]), axis=1)
            + self._goal_bonus
            + self._costs_and_bonus(action, healthy, cfrc)
        )
