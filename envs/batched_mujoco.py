"""Batched MuJoCo families on ``mujoco.batch.Batch`` (closed loop, one task per copy).

Each ``step`` writes every copy's ``ctrl``, runs ``Batch.step(nstep=frame_skip)`` on the batch's
thread pool (the GIL is released), then computes observations, rewards and terminations with the
family's vectorised functions (the same ones the single env uses, :mod:`envs.mujoco_base`), so
the batched env equals the single env for the same states and actions (tested).

kwargs (besides the family's own, e.g. ``ctrl_cost_weight``):

================= ============================ ============================================
name              default                      meaning
================= ============================ ============================================
num_envs          (required)                   number of copies
nthread           usable cores, at most 16     ``mujoco.batch`` threads
max_episode_steps family horizon               truncation
================= ============================ ============================================

Per-copy initial states: ``reset(options={"qpos": (num_envs, nq), "qvel": (num_envs, nv)})``.
Per-copy dynamics (RandParams families): ``Batch.expand(field)`` + ``set_const(ids)``.

Instability: copies that ``Batch.step`` reports in a ``SimulationError`` (they keep their previous
state), whose ``qpos``/``qvel`` become non-finite, or whose bad-qpos/qvel/qacc warning counters
rise, are ``terminated`` with ``info["sim_unstable"][i] = True``, reward 0 and a zero
observation; the other copies are unaffected; the unstable copy is reset at the next step.

Version history: v0, first version.
"""

from __future__ import annotations

import os

import gymnasium
import mujoco
import numpy as np
from mujoco import batch as mjbatch

from envs.mujoco_base import _UNSTABLE_WARNINGS
from envs.vector_base import BatchedTaskVectorEnv


def default_nthread() -> int:
    """The cores this process may run on (its affinity mask, e.g. under ``taskset`` or a
    container's cpuset; ``os.cpu_count()`` where there is none), capped at 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, 16))


class BatchedMujocoVectorEnv(BatchedTaskVectorEnv):
    """Generic batched version of a :class:`envs.mujoco_base.MujocoTaskMixin` family."""

    def __init__(
        self,
        env_cls: type,
        num_envs: int,
        max_episode_steps: int | None = None,
        nthread: int | None = None,
        **kwargs,
    ):
        kwargs.pop("render_mode", None)
        single = env_cls(**kwargs)
        super().__init__(single, num_envs, max_episode_steps)
        self.nthread = default_nthread() if nthread is None else int(nthread)
        self.model = single.model
        self.frame_skip = single.frame_skip
        self.dt = single.dt
        # families with extra sensors read them at the new state: each step ends with the
        # position and velocity stages (stage VEL), which a persistent batch reuses in its next
        # step instead of recomputing them
        self._stage = int(mujoco.mjtStage.mjSTAGE_VEL) if single._sensors else 0
        self.batch = mjbatch.Batch(
            self.model, self.num_envs, self.nthread, persistent=bool(single._sensors)
        )
        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self.ctrl = self.batch.bind("ctrl")
        self._xpos = self.batch.bind("xpos") if single._uses_xpos else None
        self._cfrc = self.batch.bind("cfrc_ext") if single._uses_cfrc else None
        self._zero_cfrc = np.zeros((self.num_envs, self.model.nbody, 6))
        self._sens = self.batch.bind("sensordata") if single._sensors else None
        self._no_sens = np.zeros((self.num_envs, 0))
        self._tarr = single._task_arrays([single._sample_task(self._rng)] * self.num_envs)
        self._all = np.arange(self.num_envs)
        self._noise = float(single._reset_noise_scale)
        self._terminate = single._terminate_unhealthy()

    @property
    def _cfrc_now(self):
        return self._cfrc if self._cfrc is not None else self._zero_cfrc

    @property
    def _sens_now(self):
        return self._sens if self._sens is not None else self._no_sens

    def _warn_counts(self) -> np.ndarray:
        return self.batch.warning[:, _UNSTABLE_WARNINGS, 1].sum(axis=1)

    # ---------------------------------------------------------------- hooks
    def _apply_tasks(self, ids):
        tasks = [self._tasks[i] for i in ids]
        for key, arr in self.single_env._task_arrays(tasks).items():
            if self._tarr[key].shape[0] != self.num_envs:
                self._tarr[key] = np.repeat(self._tarr[key][:1], self.num_envs, axis=0)
            self._tarr[key][ids] = arr
        fields = self.single_env._model_fields(tasks)
        if fields:
            for name, values in fields.items():
                self.batch.expand(name)[ids] = values
            self.batch.set_const(ids)

    def _reset_copies(self, ids, options):
        ids = np.asarray(ids)
        k = len(ids)
        env = self.single_env
        qpos = env.init_qpos + self._rng.uniform(-self._noise, self._noise, (k, self.model.nq))
        qvel = env.init_qvel + self._noise * self._rng.standard_normal((k, self.model.nv))
        if options.get("qpos") is not None:
            qpos = np.asarray(options["qpos"], dtype=np.float64)[ids]
        if options.get("qvel") is not None:
            qvel = np.asarray(options["qvel"], dtype=np.float64)[ids]
        full = k == self.num_envs
        self.batch.reset(None if full else ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self.qpos[ids] = qpos
        self.qvel[ids] = qvel
        if self._cfrc is not None or self._sens is not None:
            # the single env's set_state runs mj_forward (probe sensor, extra sensors)
            self.batch.forward(None if full else ids)
        cfrc = self._cfrc[ids] if self._cfrc is not None else self._zero_cfrc[:k]
        return env._v_obs(self.qpos[ids], self.qvel[ids], cfrc, self._sens_now[ids])

    def _step_copies(self, actions, active):
        env = self.single_env
        actions = actions.astype(np.float64, copy=False)
        pos_before = env._v_pos(self.qpos, self._xpos)
        warn_before = self._warn_counts()
        self.ctrl[:] = actions
        ids = None if active is None else np.flatnonzero(active)
        failed = np.zeros(self.num_envs, dtype=bool)
        try:
            self.batch.step(ids, nstep=self.frame_skip, stage=self._stage)
        except mjbatch.SimulationError as e:
            failed[e.ids] = True
        pos_after = env._v_pos(self.qpos, self._xpos)
        sens = self._sens_now
        vel = env._v_vel(pos_before, pos_after, sens)
        healthy = env._v_healthy(self.qpos, self.qvel)
        cfrc = self._cfrc_now
        reward = env._v_reward(vel, pos_after, actions, healthy, cfrc, self._tarr)
        reward_ctrl = -env._v_ctrl_cost(actions)
        obs = env._v_obs(self.qpos, self.qvel, cfrc, sens)
        finite = np.isfinite(self.qpos).all(axis=1) & np.isfinite(self.qvel).all(axis=1)
        unstable = failed | ~finite | (self._warn_counts() > warn_before)
        terminated = unstable | ~healthy if self._terminate else unstable.copy()
        if unstable.any():
            obs[unstable] = 0.0
            reward[unstable] = 0.0
            reward_ctrl[unstable] = 0.0
        return obs, reward, terminated, unstable, {"reward_ctrl": reward_ctrl}

    def render(self):  # pragma: no cover - rendering is the single env's job
        return None


def make_batched(env_cls: type):
    """A ``vector_entry_point`` creator for ``env_cls`` (``nthread`` is a named parameter, so
    samplers can tell from the signature that the family takes a thread count)."""

    def creator(num_envs: int, nthread: int | None = None, **kwargs) -> gymnasium.vector.VectorEnv:
        return BatchedMujocoVectorEnv(env_cls, num_envs, nthread=nthread, **kwargs)

    creator.__name__ = f"{env_cls.__name__}Vector"
    return creator
