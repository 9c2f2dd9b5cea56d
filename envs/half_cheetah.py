"""HalfCheetah velocity and direction tasks (MAML paper section 5.3).

Subclasses of Gymnasium's ``HalfCheetah-v5`` (all its kwargs: ``xml_file``, ``frame_skip``,
``ctrl_cost_weight``, ``reset_noise_scale``, ``exclude_current_positions_from_observation``,
``render_mode``, ...). ``v_x = (qpos_x' - qpos_x) / dt`` is the torso's forward velocity as in v5.

* ``HalfCheetahVel``: task ``{"velocity": v*}``, training v* ~ U[0, 2], valid [-10, 10];
  reward ``-|v_x - v*| - ctrl_cost_weight * ||a||^2``.
* ``HalfCheetahDir``: task ``{"direction": d}``, training d in {-1, +1}, valid [-1, 1];
  reward ``d * v_x - ctrl_cost_weight * ||a||^2``.

kwargs changed from ``HalfCheetah-v5``:

================= ======= ================================================================
name              default meaning
================= ======= ================================================================
ctrl_cost_weight  0.05    MAML paper (v5: 0.1)
frame_skip        1       MAML code (v5: 5), so one env step is 0.01 s and an episode 2 s
================= ======= ================================================================

New kwargs, for the MAML code's (rllab's) observation and velocity:

================= ======= ================================================================
name              default meaning
================= ======= ================================================================
observe_com       False   append the whole body's centre of mass (x, y, z) to the
                          observation (20-d, rllab's ``get_body_com("torso")``, the torso's
                          subtree centre of mass), after the step
velocity          "root"  ``v_x`` of the reward: ``"root"`` is v5's finite difference of the
                          root's x; ``"com"`` the whole body's centre-of-mass x velocity
                          after the step (rllab's ``get_body_comvel("torso")``)
================= ======= ================================================================

Why ``frame_skip=1``: the MAML code (``cbfinn/maml_rl``, rllab's ``MujocoEnv``) reads the frame
skip from a ``<numeric name="frame_skip">`` in the model file and defaults to 1; rllab's
``half_cheetah.xml`` has none and a 0.01 s timestep, so its 200-step episodes last 2 s of
simulated time, not v5's 10 s, and each action acts for 0.01 s, not 0.05 s. The paper's numbers
come from that env. Pass ``frame_skip=5`` for v5's timing.

(``forward_reward_weight`` is unused: the task term replaces the forward reward.)
Horizon 200. No termination.

Deviations from the MAML env by default: the observation is v5's 17-d one (qpos[1:], qvel) and
``v_x`` the root's finite difference (``observe_com=True, velocity="com"`` give the MAML code's);
initial-state noise is v5's (qpos U(-0.1, 0.1), qvel 0.1 N(0, 1); rllab: qpos 0.01 N(0, 1)).
No ``mj_rnePostConstraint`` after the step (unused by HalfCheetah). Instability handling, see :mod:`envs.mujoco_base`.

Version history: v0, first version (``frame_skip`` default changed from v5's 5 to the MAML code's
1 before any release; runs made earlier set ``frame_skip: 5`` in their config to be reproduced).
``observe_com`` and ``velocity`` were added later with defaults that keep the earlier behaviour.
"""

from __future__ import annotations

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.spaces import Box
from gymnasium.utils import EzPickle

from envs.base import TaskParam, stack_task_values
from envs.mujoco_base import COM, MujocoTaskMixin


class _HalfCheetahTaskEnv(MujocoTaskMixin, HalfCheetahEnv):
    horizon = 200

    def __init__(
        self,
        ctrl_cost_weight: float = 0.05,
        frame_skip: int = 1,
        observe_com: bool = False,
        velocity: str = "root",
        **kwargs,
    ):
        if not isinstance(observe_com, bool):
            raise ValueError(f"observe_com must be true or false, got {observe_com!r}")
        self._observe_com = observe_com
        self._use_com(velocity, observe_com)
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, frame_skip=frame_skip, **kwargs)
        EzPickle.__init__(
            self,
            ctrl_cost_weight=ctrl_cost_weight,
            frame_skip=frame_skip,
            observe_com=observe_com,
            velocity=velocity,
            **kwargs,
        )
        if observe_com:
            size = self.observation_space.shape[0] + 3
            self.observation_space = Box(-np.inf, np.inf, (size,), np.float64)
            self.observation_structure["com"] = 3

    def _v_obs(self, qpos, qvel, cfrc, sensordata):
        start = 1 if self._exclude_current_positions_from_observation else 0
        parts = [qpos[:, start:], qvel]
        if self._observe_com:
            parts.append(self._sensor(sensordata, COM))
        return np.concatenate(parts, axis=1)


class HalfCheetahVelEnv(_HalfCheetahTaskEnv):
    """Run at a target forward velocity (see module docstring)."""

    task_kind = "goal"
    task_params = (
        TaskParam(
            "velocity", 0.0, 2.0, valid_low=-10.0, valid_high=10.0, doc="target forward velocity"
        ),
    )

    def _task_arrays(self, tasks):
        return {"velocity": stack_task_values(tasks, "velocity")}

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        return -np.abs(vel[:, 0] - tarr["velocity"]) - self._v_ctrl_cost(action)


class HalfCheetahDirEnv(_HalfCheetahTaskEnv):
    """Run forward (d = +1) or backward (d = -1) (see module docstring)."""

    task_kind = "goal"
    task_params = (
        TaskParam(
            "direction",
            -1.0,
            1.0,
            valid_low=-1.0,
            valid_high=1.0,
            choices=(-1.0, 1.0),
            doc="+1 forward, -1 backward",
        ),
    )

    def _task_arrays(self, tasks):
        return {"direction": stack_task_values(tasks, "direction")}

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        return tarr["direction"] * vel[:, 0] - self._v_ctrl_cost(action)
