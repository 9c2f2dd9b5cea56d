"""``vector_entry_point`` creators for the batched MuJoCo families (``mujoco.batch``).

Each is ``creator(num_envs, nthread=None, max_episode_steps=None, **family_kwargs)``; see
:mod:`envs.batched_mujoco`.

Version history: v0, first version.
"""

from __future__ import annotations

from envs.batched_mujoco import make_batched
from envs.half_cheetah import HalfCheetahDirEnv, HalfCheetahVelEnv

half_cheetah_vel = make_batched(HalfCheetahVelEnv)
half_cheetah_dir = make_batched(HalfCheetahDirEnv)

from envs.ant import AntDirEnv, AntGoalEnv, AntVelEnv  # noqa: E402
from envs.rand_params import (  # noqa: E402
    HalfCheetahRandParamsEnv,
    HopperRandParamsEnv,
    Walker2dRandParamsEnv,
)

ant_vel = make_batched(AntVelEnv)
ant_dir = make_batched(AntDirEnv)
ant_goal = make_batched(AntGoalEnv)
half_cheetah_rand_params = make_batched(HalfCheetahRandParamsEnv)
hopper_rand_params = make_batched(HopperRandParamsEnv)
walker2d_rand_params = make_batched(Walker2dRandParamsEnv)
