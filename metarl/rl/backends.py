"""How the sampler gets many environment copies, one task per copy.

========== =================================================================================
backend    what it builds
========== =================================================================================
batched    ``gymnasium.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``: the
           family's natively batched env (numpy navigation, ``mujoco.batch`` locomotion);
           tasks set with ``set_tasks(list)``
vector     ``gymnasium.vector.SyncVectorEnv`` of ``gymnasium.make(id)`` copies, stepped in this
           process; works for any Gymnasium env with the task API (``set_task`` per copy)
auto       ``batched`` when the id registers a vector entry point, else ``vector``
========== =================================================================================

Both use Gymnasium's ``NEXT_STEP`` autoreset and truncate at the horizon.
"""

from __future__ import annotations

from typing import Any

import gymnasium
from gymnasium.vector import SyncVectorEnv, VectorEnv

BACKENDS = ("auto", "batched", "vector")


def registered_task_envs() -> list[str]:
    """The ``metarl/`` environment ids currently registered with Gymnasium."""
    try:
        import envs  # noqa: F401  (registers the metarl/ ids)
    except ImportError:
        pass
    return sorted(k for k in gymnasium.registry if k.startswith("metarl/"))


def env_spec(env_id: str) -> gymnasium.envs.registration.EnvSpec:
    """The registered spec, or a ``ValueError`` listing the ``metarl/`` ids."""
    registered_task_envs()
    if env_id not in gymnasium.registry:
        raise ValueError(
            f"unknown environment id {env_id!r}; registered metarl ids: {registered_task_envs()}"
        )
    return gymnasium.spec(env_id)


def resolve_backend(env_id: str, backend: str) -> str:
    """``auto`` -> ``batched`` if ``env_id`` has a vector entry point, else ``vector``."""
    if backend not in BACKENDS:
        raise ValueError(f"sampler backend must be one of {BACKENDS}, got {backend!r}")
    has_vec = env_spec(env_id).vector_entry_point is not None
    if backend == "auto":
        return "batched" if has_vec else "vector"
    if backend == "batched" and not has_vec:
        raise ValueError(
            f"{env_id} registers no vector_entry_point, so the 'batched' backend is unavailable; "
            "use sampler.backend: vector (or auto)"
        )
    return backend


def env_horizon(env_id: str, horizon: int | None) -> int:
    """``horizon`` if given, else the registered ``max_episode_steps``."""
    if horizon is not None:
        return int(horizon)
    steps = env_spec(env_id).max_episode_steps
    if steps is None:
        raise ValueError(f"{env_id} has no max_episode_steps; set env.horizon in the config")
    return int(steps)


def make_env(
    env_id: str, backend: str, num_envs: int, kwargs: dict[str, Any], horizon: int
) -> VectorEnv:
    """A vector env of ``num_envs`` copies truncated at ``horizon``."""
    if backend == "batched":
        return gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            max_episode_steps=horizon,
            **kwargs,
        )
    if backend == "vector":

        def make_one() -> gymnasium.Env:
            return gymnasium.make(
                env_id, max_episode_steps=horizon, disable_env_checker=True, **kwargs
            )

        return SyncVectorEnv([make_one for _ in range(num_envs)])
    raise ValueError(f"backend must be 'batched' or 'vector' here, got {backend!r}")


def set_tasks(env: VectorEnv, tasks: list[dict]) -> None:
    """One task per copy; the env validates them (``ValueError`` naming valid keys/ranges)."""
    if isinstance(env, SyncVectorEnv):
        for sub, task in zip(env.envs, tasks):
            sub.unwrapped.set_task(task)
    else:
        env.set_tasks(tasks)
