"""Registration of every metarl family as ``metarl/<Name>-v0`` and the CLI table.

Importing :mod:`envs` calls :func:`register_all` (idempotent). Each row of :data:`FAMILIES` names
the single-env entry point, the batched ``vector_entry_point`` (or None) and the horizon
(``max_episode_steps``). :func:`describe_families` gives the table that ``metarl envs`` prints.
Both entry points take one keyword besides the family's own: ``task_range`` (the training
distribution's ranges, :meth:`envs.base.TaskEnvMixin.set_task_range`).

Version history: v0, first version.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import gymnasium
from gymnasium import spaces

NAMESPACE = "metarl"


@dataclass(frozen=True)
class Family:
    name: str
    entry_point: str  # "module:Class"
    vector_entry_point: str | None  # "module:callable" or None
    horizon: int

    @property
    def id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v0"


FAMILIES: tuple[Family, ...] = (
    Family(
        "Navigation2D",
        "envs.navigation:Navigation2DEnv",
        "envs.navigation:Navigation2DVectorEnv",
        100,
    ),
    Family(
        "HalfCheetahVel",
        "envs.half_cheetah:HalfCheetahVelEnv",
        "envs.vector_entries:half_cheetah_vel",
        200,
    ),
    Family(
        "HalfCheetahDir",
        "envs.half_cheetah:HalfCheetahDirEnv",
        "envs.vector_entries:half_cheetah_dir",
        200,
    ),
    Family("AntVel", "envs.ant:AntVelEnv", "envs.vector_entries:ant_vel", 200),
    Family("AntDir", "envs.ant:AntDirEnv", "envs.vector_entries:ant_dir", 200),
    Family("AntGoal", "envs.ant:AntGoalEnv", "envs.vector_entries:ant_goal", 200),
    Family(
        "HalfCheetahRandParams",
        "envs.rand_params:HalfCheetahRandParamsEnv",
        "envs.vector_entries:half_cheetah_rand_params",
        200,
    ),
    Family(
        "HopperRandParams",
        "envs.rand_params:HopperRandParamsEnv",
        "envs.vector_entries:hopper_rand_params",
        200,
    ),
    Family(
        "Walker2dRandParams",
        "envs.rand_params:Walker2dRandParamsEnv",
        "envs.vector_entries:walker2d_rand_params",
        200,
    ),
    Family(
        "CartPoleDynamics",
        "envs.classic:CartPoleDynamicsEnv",
        "envs.classic:CartPoleDynamicsVectorEnv",
        500,
    ),
    Family(
        "PendulumDynamics",
        "envs.classic:PendulumDynamicsEnv",
        "envs.classic:PendulumDynamicsVectorEnv",
        200,
    ),
    Family("Bandit", "envs.discrete:BanditEnv", "envs.discrete:BanditVectorEnv", 100),
    Family("TabularMDP", "envs.discrete:TabularMDPEnv", "envs.discrete:TabularMDPVectorEnv", 10),
)


def _load(path: str):
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


class _Creator:
    """An entry point that builds ``path``'s env and applies ``task_range`` (to a vector env's
    ``single_env``, which draws its copies' tasks). A class, not a closure, so it pickles."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, *args, task_range=None, **kwargs):
        env = _load(self.path)(*args, **kwargs)
        if task_range is not None:
            getattr(env, "single_env", env).set_task_range(task_range)
        return env


def register_all() -> list[str]:
    """Register every family (skips ids already registered); return the ids."""
    for fam in FAMILIES:
        if fam.id in gymnasium.registry:
            continue
        vector = fam.vector_entry_point
        gymnasium.register(
            id=fam.id,
            entry_point=_Creator(fam.entry_point),
            vector_entry_point=None if vector is None else _Creator(vector),
            max_episode_steps=fam.horizon,
        )
    return [fam.id for fam in FAMILIES]


def registered_ids() -> list[str]:
    return [fam.id for fam in FAMILIES]


def _space_text(space: gymnasium.Space) -> str:
    if isinstance(space, spaces.Discrete):
        return f"discrete({space.n})"
    if isinstance(space, spaces.Box):
        return str(int(space.shape[0])) if len(space.shape) == 1 else str(list(space.shape))
    return str(space)


def describe_families() -> list[dict]:
    """One dict per registered id: id, kind, task (params and ranges), horizon, obs, action,
    fast_path ("yes"/"no")."""
    rows = []
    for fam in FAMILIES:
        env = gymnasium.make(fam.id)
        try:
            u = env.unwrapped
            cls = type(u)
            rows.append(
                {
                    "id": fam.id,
                    "kind": cls.task_kind,
                    "task": "; ".join(p.describe() for p in cls.task_params),
                    "horizon": fam.horizon,
                    "obs": _space_text(env.observation_space),
                    "action": _space_text(env.action_space),
                    "fast_path": "yes" if fam.vector_entry_point else "no",
                }
            )
        finally:
            env.close()
    return rows
