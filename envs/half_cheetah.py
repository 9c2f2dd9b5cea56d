"""HalfCheetah velocity and direction tasks (MAML paper, REFERENCE §1).

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

Why ``frame_skip=1``: the MAML code (``cbfinn/maml_rl``, rllab's ``MujocoEnv``) reads the frame
skip from a ``<numeric name="frame_skip">`` in the model file and defaults to 1; rllab's
``half_cheetah.xml`` has none and a 0.01 s timestep, so its 200-step episodes last 2 s of
simulated time, not v5's 10 s, and each action acts for 0.01 s, not 0.05 s. The paper's numbers
come from that env. Pass ``frame_skip=5`` for v5's timing.

(``forward_reward_weight`` is unused: the task term replaces the forward reward.)
Horizon 200. No termination.

Deviations from the MAML env: the observation is v5's 17-d one (qpos[1:], qvel); the MAML env
used 20-d (it also had the torso's center-of-mass position). No ``mj_rnePostConstraint`` after the
step (unused by HalfCheetah). Instability handling, see :mod:`envs.mujoco_base`.

Version history: v0, first version (``frame_skip`` default changed from v5's 5 to the MAML code's
1 before any release; runs made earlier set ``frame_skip: 5`` in their config to be reproduced).
"""

from __future__ import annotations

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import EzPickle

from envs.base import TaskParam, stack_task_values
from envs.mujoco_base import MujocoTaskMixin


class _HalfCheetahTaskEnv(MujocoTaskMixin, HalfCheetahEnv):
    horizon = 200

    def __init__(self, ctrl_cost_weight: float = 0.05, frame_skip: int = 1, **kwargs):
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, frame_skip=frame_skip, **kwargs)
        EzPickle.__init__(self, ctrl_cost_weight=ctrl_cost_weight, frame_skip=frame_skip, **kwargs)

    def _v_obs(self, qpos, qvel, cfrc):
        start = 1 if self._exclude_current_positions_from_observation else 0
        return np.concatenate([qpos[:, start:], qvel], axis=1)

    def _ctrl_cost(self, action):
        return self._ctrl_cost_weight * np.sum(np.square(action), axis=1)


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
        return -np.abs(vel[:, 0] - tarr["velocity"]) - self._ctrl_cost(action)


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
        return tarr["direction"] * vel[:, 0] - self._ctrl_cost(action)
