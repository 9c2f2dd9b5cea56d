"""How the sampler gets many environment copies, one task per copy, and where they run.

========== =================================================================================
backend    what it builds
========== =================================================================================
batched    ``gymnasium.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``: the
           family's natively batched env (numpy navigation, ``mujoco.batch`` locomotion);
           tasks set with ``set_tasks(list)``
vector     ``gymnasium.vector.SyncVectorEnv`` of ``gymnasium.make(id)`` copies, stepped in this
           process; works for any Gymnasium env with the task API (``set_task`` per copy)
process    worker processes (:mod:`metarl.rl.sampling.process_pool`), each with a batched env (or a
           ``SyncVectorEnv`` when the id has no vector entry point) for its share of the slots
ray        the same workers as Ray actors (:mod:`metarl.rl.sampling.ray_pool`), on one machine or a cluster
auto       ``batched`` when the id registers a vector entry point (``mujoco.batch`` already uses
           every core), else ``process`` with one worker per core when there is more than one
           core, else ``vector`` (:func:`plan_sampler`)
========== =================================================================================

All use Gymnasium's ``NEXT_STEP`` autoreset and truncate at the horizon.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import gymnasium
from gymnasium.vector import SyncVectorEnv, VectorEnv

BACKENDS = ("auto", "batched", "vector", "process", "ray")
#: backends that run episodes in worker processes / actors
WORKER_BACKENDS = ("process", "ray")


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


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SamplerPlan:
    """The backend a sampler uses, its worker count (None: in-process, or for ``ray`` without
    ``num_workers``: one per CPU of the cluster) and why, for the one line printed at start."""

    backend: str
    num_workers: int | None
    reason: str

    def describe(self) -> str:
        """E.g. ``sampler: batched (HalfCheetahVel has a native batched env; 2 cores)``."""
        if self.backend not in WORKER_BACKENDS:
            return f"sampler: {self.backend} ({self.reason})"
        workers = (
            "one worker per cluster CPU"
            if self.num_workers is None
            else (f"{self.num_workers} worker{'s' * (self.num_workers != 1)}")
        )
        return f"sampler: {self.backend}, {workers} ({self.reason})"


def plan_sampler(env_id: str, backend: str, num_workers: int | None = None) -> SamplerPlan:
    """Resolve ``backend`` (``auto`` included) and the worker count for ``env_id`` on this machine.

    ``auto``: ``batched`` when the id registers a vector entry point; else ``process`` with
    ``num_workers`` (default: one per core) when there is more than one core; else ``vector``.
    ``process`` defaults to one worker per core; ``ray`` to one per CPU of the cluster.
    """
    if backend not in BACKENDS:
        raise ValueError(f"sampler backend must be one of {BACKENDS}, got {backend!r}")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"sampler num_workers must be >= 1 (or unset for auto), got {num_workers}")
    has_vec = env_spec(env_id).vector_entry_point is not None
    cores = available_cores()
    name = env_id.split("/")[-1].rsplit("-v", 1)[0]
    where = f"{cores} core{'s' * (cores != 1)}"
    if backend == "auto":
        if has_vec:
            return SamplerPlan("batched", None, f"{name} has a native batched env; {where}")
        if cores > 1 or num_workers is not None:
            workers = num_workers or cores
            return SamplerPlan("process", workers, f"{name} has no native batched env; {where}")
        return SamplerPlan("vector", None, f"{name} has no native batched env; {where}")
    if backend == "batched" and not has_vec:
        raise ValueError(
            f"{env_id} registers no vector_entry_point, so the 'batched' backend is unavailable; "
            "use sampler.backend: vector, process (or auto)"
        )
    if num_workers is not None and backend not in WORKER_BACKENDS:
        raise ValueError(
            f"sampler num_workers applies to the process and ray backends, not {backend!r}; "
            "remove num_workers or set sampler.backend: process"
        )
    if backend == "process":
        num_workers = num_workers or cores
    return SamplerPlan(backend, num_workers, f"sampler.backend: {backend}; {where}")


def resolve_backend(env_id: str, backend: str) -> str:
    """The backend ``backend`` resolves to for ``env_id`` (see :func:`plan_sampler`)."""
    return plan_sampler(env_id, backend).backend


def accepts_nthread(env_id: str) -> bool:
    """Whether the id's vector entry point takes an ``nthread`` argument (``mujoco.batch``)."""
    entry = env_spec(env_id).vector_entry_point
    if entry is None:
        return False
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = getattr(__import__(module, fromlist=[attr]), attr)
    try:
        return "nthread" in inspect.signature(entry).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def env_horizon(env_id: str, horizon: int | None) -> int:
    """``horizon`` if given, else the registered ``max_episode_steps``."""
    if horizon is not None:
        return int(horizon)
    steps = env_spec(env_id).max_episode_steps
    if steps is None:
        raise ValueError(f"{env_id} has no max_episode_steps; set env.horizon in the config")
    return int(steps)


def make_env(
    env_id: str,
    backend: str,
    num_envs: int,
    kwargs: dict[str, Any],
    horizon: int,
    nthread: int | None = None,
) -> VectorEnv:
    """A vector env of ``num_envs`` copies truncated at ``horizon``.

    ``nthread``: physics threads for a batched env whose entry point takes ``nthread`` (the
    ``mujoco.batch`` families), unless ``kwargs`` sets it; ignored otherwise.
    """
    if backend == "batched":
        if nthread is not None and "nthread" not in kwargs and accepts_nthread(env_id):
            kwargs = {**kwargs, "nthread": int(nthread)}
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
