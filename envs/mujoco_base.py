"""Shared machinery of the MuJoCo task families (single env side).

:class:`MujocoTaskMixin` goes before a Gymnasium v5 MuJoCo env (``HalfCheetahEnv``, ``AntEnv``, ...)
so the family keeps that env's kwargs (``xml_file``, ``ctrl_cost_weight``, ``reset_noise_scale``,
...), rendering and pickling. A family writes its observation, position, health and reward as
*vectorised* functions of ``(n, ...)`` arrays (``_v_obs``, ``_v_pos``, ``_v_healthy``,
``_v_reward``); the single env calls them with ``n = 1`` and the batched env
(:mod:`envs.batched_mujoco`) with ``n = num_envs``, so both compute the same numbers.

Common behaviour (all MuJoCo families):

* ``reset(options={"task": ..., "qpos": ..., "qvel": ...})``: the task, and optionally an exact
  initial state (after the usual noise draw, so the RNG stream does not depend on it).
* Simulator instability: a non-finite ``qpos``/``qvel`` or a rise of MuJoCo's bad-qpos/qvel/qacc
  warning counters ends the episode (``terminated``) with ``info["sim_unstable"] = True``, reward
  0 and a zeroed (finite) observation.
* ``info["reward_ctrl"]`` is the control term of the reward, ``-ctrl_cost_weight * ||a||^2``
  (Gymnasium v5's key), in the single and the batched env; the rest of the reward is the task
  term (with Ant's survive bonus and contact cost).
* After ``mj_step`` no ``mj_rnePostConstraint`` is run (Gymnasium runs it); families that need
  ``cfrc_ext`` (Ant) compile the model with a probe sensor so MuJoCo computes it inside the step,
  identically in ``mujoco.batch`` (see :mod:`envs.ant`).
* ``velocity="com"`` (families that take it): the reward's velocity is the whole body's
  centre-of-mass velocity after the step (the root body's subtree, rllab's
  ``get_body_comvel``, the MAML code's) instead of the default finite difference of the torso's
  position; ``observe_com`` (HalfCheetah) also reads the centre of mass. Both add subtree
  sensors that are made current at the new state after every step (see ``_sensors``).
* mujoco 4's per-load ``settotalmass`` deprecation warning is dropped while loading; any other
  MuJoCo warning is re-emitted as a Python ``RuntimeWarning``.

Version history: v0, first version.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import ClassVar

import mujoco
import numpy as np

from envs.base import TaskEnvMixin

_UNSTABLE_WARNINGS = (
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
)


COM, COM_VEL = "metarl_com", "metarl_com_vel"  # subtree of the root body "torso": whole body
VELOCITIES = ("root", "com")


def _forward_warning(msg: str) -> None:
    if "settotalmass" in msg:
        return
    warnings.warn(f"MuJoCo: {msg.strip()}", RuntimeWarning, stacklevel=2)


@contextlib.contextmanager
def quiet_mujoco_load():
    """Drop mujoco 4's ``settotalmass`` deprecation message during a model load only."""
    prev = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(_forward_warning)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(prev)


def load_model(
    path: str, probe_body: str | None = None, sensors: Sequence[tuple[str, int, str]] = ()
) -> mujoco.MjModel:
    """Load ``path``; with ``probe_body`` add a frame-acceleration sensor on that body, which
    makes MuJoCo compute ``cfrc_ext`` inside ``mj_step`` (and inside ``mujoco.batch``).
    ``sensors``: further ``(name, mjtSensor, body name)`` sensors to add (read from
    ``sensordata`` by name)."""
    extra = list(sensors)
    if probe_body is not None:
        extra.insert(0, ("metarl_cfrc_probe", mujoco.mjtSensor.mjSENS_FRAMELINACC, probe_body))
    with quiet_mujoco_load():
        if not extra:
            return mujoco.MjModel.from_xml_path(path)
        spec = mujoco.MjSpec.from_file(path)
        for name, kind, body in extra:
            s = spec.add_sensor()
            s.name = name
            s.type = kind
            s.objtype = mujoco.mjtObj.mjOBJ_BODY
            s.objname = body
        with warnings.catch_warnings():  # mujoco 4 warns about settotalmass here too
            warnings.filterwarnings("ignore", message=".*settotalmass.*")
            return spec.compile()


class MujocoTaskMixin(TaskEnvMixin):
    """Task API + shared step/reset for Gymnasium v5 MuJoCo envs (see module docstring)."""

    horizon = 200
    _uses_xpos: ClassVar[bool] = False  # _v_pos reads xpos
    _uses_cfrc: ClassVar[bool] = False  # obs/reward read cfrc_ext (adds the probe sensor)
    _probe_body: ClassVar[str] = "torso"
    _terminates: ClassVar[bool] = False  # unhealthy ends the episode (if the kwarg allows)
    # extra (name, mjtSensor, body) sensors; when set, position- and velocity-dependent fields
    # and sensors are recomputed at the new state after every step (``_v_obs``/``_v_vel`` read
    # ``sensordata``), as ``mujoco.batch``'s ``stage=mjSTAGE_VEL`` does
    _sensors: tuple[tuple[str, int, str], ...] = ()

    _com_velocity: bool = False  # the reward's velocity: the centre of mass's (``_use_com``)

    _tarr: dict = {}

    def _use_com(self, velocity: str, observe_com: bool = False) -> None:
        """Before the model loads: the reward's velocity (``"root"``: the finite difference of
        ``_v_pos``; ``"com"``: the whole body's centre-of-mass velocity), and the subtree
        sensors that it or an observed centre of mass (``observe_com``) read."""
        if velocity not in VELOCITIES:
            raise ValueError(
                f"velocity must be 'root' (the finite difference of the torso's position, as "
                f"Gymnasium v5) or 'com' (the whole body's centre-of-mass velocity, as the MAML "
                f"code), got {velocity!r}"
            )
        self._com_velocity = velocity == "com"
        if observe_com or self._com_velocity:
            self._sensors = (
                (COM, mujoco.mjtSensor.mjSENS_SUBTREECOM, "torso"),
                (COM_VEL, mujoco.mjtSensor.mjSENS_SUBTREELINVEL, "torso"),
            )

    # ---------------------------------------------------------------- simulation plumbing
    def _initialize_simulation(self):
        model = load_model(
            self.fullpath, self._probe_body if self._uses_cfrc else None, self._sensors
        )
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _step_mujoco_simulation(self, ctrl, n_frames):
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)

    def _warning_counts(self) -> np.ndarray:
        return np.array([self.data.warning[i].number for i in _UNSTABLE_WARNINGS])

    # ---------------------------------------------------------------- tasks
    def _apply_task(self, task: dict) -> None:
        self._tarr = self._task_arrays([task])
        fields = self._model_fields([task])
        if fields:
            for name, values in fields.items():
                getattr(self.model, name)[...] = values[0]
            mujoco.mj_setConst(self.model, self.data)

    def _task_arrays(self, tasks: list[dict]) -> dict[str, np.ndarray]:
        """Per-copy task arrays used by ``_v_reward``."""
        return {}

    def _model_fields(self, tasks: list[dict]) -> dict[str, np.ndarray]:
        """Per-copy MjModel field values (dynamics families); {} for goal families."""
        return {}

    # ---------------------------------------------------------------- vectorised hooks
    def _v_obs(self, qpos, qvel, cfrc, sensordata):
        raise NotImplementedError

    def _v_vel(self, pos_before, pos_after, sensordata):
        """(n, 2) velocity used by the reward: by default the finite difference of ``_v_pos``,
        with ``velocity="com"`` the centre of mass's (:meth:`_use_com`)."""
        if self._com_velocity:
            return self._sensor(sensordata, COM_VEL)[:, :2]
        return (pos_after - pos_before) / self.dt

    def _sensor(self, sensordata, name: str):
        """Columns of ``sensordata`` (n, nsensordata) that belong to sensor ``name``."""
        s = self.model.sensor(name)
        return sensordata[:, int(s.adr[0]) : int(s.adr[0]) + int(s.dim[0])]

    def _v_pos(self, qpos, xpos):
        """(n, 2) position whose finite difference is the velocity in the reward."""
        return np.stack([qpos[:, 0], np.zeros(len(qpos))], axis=1)

    def _v_healthy(self, qpos, qvel):
        return np.ones(len(qpos), dtype=bool)

    def _v_reward(self, vel, pos, action, healthy, cfrc, tarr):
        raise NotImplementedError

    def _v_ctrl_cost(self, action):
        """(n,) control cost ``ctrl_cost_weight * ||a||^2`` of the executed actions; every
        family subtracts it in ``_v_reward``, and ``info["reward_ctrl"]`` reports ``-cost``."""
        return self._ctrl_cost_weight * np.sum(np.square(action), axis=1)

    def _terminate_unhealthy(self) -> bool:
        return self._terminates and bool(getattr(self, "_terminate_when_unhealthy", True))

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._prepare_reset(seed, options)
        obs, info = super().reset(seed=None, options=options)
        options = options or {}
        if options.get("qpos") is not None or options.get("qvel") is not None:
            qpos = np.asarray(options.get("qpos", self.data.qpos), dtype=np.float64)
            qvel = np.asarray(options.get("qvel", self.data.qvel), dtype=np.float64)
            self.set_state(qpos.copy(), qvel.copy())
            obs = self._get_obs()
        info["task"] = self.get_task()
        return obs, info

    def _get_obs(self):
        d = self.data
        return self._v_obs(d.qpos[None], d.qvel[None], d.cfrc_ext[None], d.sensordata[None])[0]

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        d = self.data
        pos_before = self._v_pos(d.qpos[None], d.xpos[None])
        warn_before = self._warning_counts()
        self.do_simulation(action, self.frame_skip)
        unstable = bool(
            not (np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all())
            or (self._warning_counts() > warn_before).any()
        )
        if self._sensors:  # make sensors current at the new state (mujoco.batch: stage VEL)
            for stage in (mujoco.mj_fwdPosition, mujoco.mj_sensorPos):
                stage(self.model, self.data)
            for stage in (mujoco.mj_fwdVelocity, mujoco.mj_sensorVel):
                stage(self.model, self.data)
        pos_after = self._v_pos(d.qpos[None], d.xpos[None])
        vel = self._v_vel(pos_before, pos_after, d.sensordata[None])
        healthy = self._v_healthy(d.qpos[None], d.qvel[None])
        reward = float(
            self._v_reward(vel, pos_after, action[None], healthy, d.cfrc_ext[None], self._tarr)[0]
        )
        obs = self._get_obs()
        terminated = (self._terminate_unhealthy() and not bool(healthy[0])) or unstable
        reward_ctrl = -float(self._v_ctrl_cost(action[None])[0])
        if unstable:
            obs = np.zeros_like(obs)
            reward = reward_ctrl = 0.0
        info = {
            "task": self.get_task(),
            "x_velocity": float(vel[0, 0]),
            "reward_ctrl": reward_ctrl,
            "sim_unstable": unstable,
        }
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, False, info
