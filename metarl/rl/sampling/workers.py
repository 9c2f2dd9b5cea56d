"""The rollout worker every backend runs, and how a meta-batch is split between workers.

:class:`RolloutWorker` owns vector envs (cached by size) and a policy; :meth:`RolloutWorker.run`
is the in-process sampler's call, :meth:`RolloutWorker.sample` the remote one (numpy parameters in,
numpy arrays out, one message each way per sampling phase). Both step through
:func:`metarl.rl.sampling.rollout.rollout`.

Splitting (:func:`split_slots`) is rectangular, so the parts join back into
``[tasks, episodes, H, ...]`` by concatenation: with at least as many tasks as workers (or fewer
episodes than tasks) the tasks are split and each part keeps all episodes of its tasks; otherwise
every part gets all tasks and a share of the episodes. Fewer parts than workers are used when
there are fewer slots.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from ..policies import Policy
from .actions import ActionMap
from .backends import env_spec, make_env
from .rollout import Arrays, rollout

_POOLS: weakref.WeakSet[Any] = weakref.WeakSet()


def close_at_exit(pool: Any) -> None:
    """Have ``pool.close()`` run at interpreter exit (unless the pool is gone by then)."""
    _POOLS.add(pool)


@atexit.register
def _close_pools() -> None:
    for pool in list(_POOLS):
        pool.close()


@dataclass
class WorkerSpec:
    """Everything a worker needs to build its envs and policy (pickled once, at start).

    ``gym_spec`` is the registered :class:`gymnasium.envs.registration.EnvSpec`, re-registered
    in a worker that does not know the id (an env registered by the user's script, say).
    ``backend``: ``batched`` or ``vector`` (the env inside the worker); ``nthread``: physics
    threads for ``mujoco.batch`` envs (None: the env's default).
    """

    env_id: str
    policy: Policy
    backend: str
    horizon: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    action_map: ActionMap = field(default_factory=ActionMap)
    nthread: int | None = None
    gym_spec: Any = None


class RolloutWorker:
    """Runs whole episodes of its slots with its own copy of the policy."""

    def __init__(self, spec: WorkerSpec, torch_threads: int | None = None) -> None:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        if spec.gym_spec is not None and spec.env_id not in gymnasium.registry:
            gymnasium.register(**_spec_kwargs(spec.gym_spec))
        env_spec(spec.env_id)  # imports envs (registers the metarl ids) or names the registered
        self.spec = spec
        self.policy = spec.policy
        self._envs: dict[int, VectorEnv] = {}

    def env(self, num_envs: int) -> VectorEnv:
        """The cached vector env with ``num_envs`` copies (built on first use)."""
        if num_envs not in self._envs:
            s = self.spec
            self._envs[num_envs] = make_env(
                s.env_id, s.backend, num_envs, s.env_kwargs, s.horizon, s.nthread
            )
        return self._envs[num_envs]

    def run(
        self,
        params: Mapping[str, Tensor],
        tasks: Sequence[dict],
        episodes: int,
        rng: np.random.Generator,
    ) -> Arrays:
        """Episodes of ``tasks`` with ``params`` (shared or stacked), noise from ``rng``."""
        s = self.spec
        env = self.env(len(tasks) * episodes)
        with torch.no_grad():
            return rollout(
                env,
                self.policy,
                params,
                tasks,
                episodes,
                s.horizon,
                rng,
                s.action_map,
            )

    def sample(
        self, params: dict[str, np.ndarray], tasks: list[dict], episodes: int, seed: int
    ) -> Arrays:
        """:meth:`run` for a remote caller: numpy parameters, a seed for a fresh generator."""
        torch_params = {k: torch.from_numpy(np.asarray(v)) for k, v in params.items()}
        return self.run(torch_params, tasks, episodes, np.random.default_rng(seed))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _spec_kwargs(spec: gymnasium.envs.registration.EnvSpec) -> dict[str, Any]:
    """Keyword arguments for ``gymnasium.register`` that recreate ``spec``."""
    return {
        "id": spec.id,
        "entry_point": spec.entry_point,
        "vector_entry_point": spec.vector_entry_point,
        "max_episode_steps": spec.max_episode_steps,
        "reward_threshold": spec.reward_threshold,
        "nondeterministic": spec.nondeterministic,
        "order_enforce": spec.order_enforce,
        "disable_env_checker": spec.disable_env_checker,
        "kwargs": dict(spec.kwargs),
    }


@dataclass(frozen=True)
class Part:
    """One worker's rectangle of slots: tasks ``[task_start, task_stop)`` x episodes
    ``[episode_start, episode_stop)``."""

    task_start: int
    task_stop: int
    episode_start: int
    episode_stop: int

    @property
    def episodes(self) -> int:
        return self.episode_stop - self.episode_start

    def task_text(self, tasks: Sequence[dict]) -> str:
        """E.g. ``tasks 0-9 of 20 ([{'goal': ...}, ...])`` for error messages."""
        ids = (
            f"task {self.task_start}"
            if self.task_stop - self.task_start == 1
            else f"tasks {self.task_start}-{self.task_stop - 1}"
        )
        shown = list(tasks[self.task_start : self.task_stop])
        more = ", ..." if len(shown) > 3 else ""
        listed = ", ".join(repr(t) for t in shown[:3])
        episodes = (
            f", episode {self.episode_start}"
            if self.episodes == 1
            else f", episodes {self.episode_start}-{self.episode_stop - 1}"
        )
        return f"{ids} of {len(tasks)}{episodes} ([{listed}{more}])"


def split_slots(num_tasks: int, episodes: int, workers: int) -> tuple[list[Part], int]:
    """Rectangular parts for at most ``workers`` workers and the axis they join on (0: tasks,
    1: episodes)."""
    if num_tasks >= workers or num_tasks >= episodes:
        chunks = np.array_split(np.arange(num_tasks), min(workers, num_tasks))
        return [Part(int(c[0]), int(c[-1]) + 1, 0, episodes) for c in chunks], 0
    chunks = np.array_split(np.arange(episodes), min(workers, episodes))
    return [Part(0, num_tasks, int(c[0]), int(c[-1]) + 1) for c in chunks], 1


def is_stacked(policy: Policy, params: Mapping[str, Tensor]) -> bool:
    """Whether ``params`` are stacked per task (one more leading dimension than the policy's)."""
    ref = dict(policy.named_parameters())
    name, value = next(iter(params.items()))
    if name not in ref:
        raise ValueError(
            f"parameter {name!r} is not one of the policy's ({sorted(ref)}); pass the policy's "
            "named parameters (shared) or stacked per task"
        )
    return value.dim() == ref[name].dim() + 1


def part_params(params: Mapping[str, Tensor], part: Part, stacked: bool) -> dict[str, np.ndarray]:
    """The numpy parameters a worker needs for ``part`` (its tasks' rows when stacked)."""
    out = {}
    for k, v in params.items():
        v = v.detach().cpu()
        if stacked:
            v = v[part.task_start : part.task_stop]
        out[k] = np.ascontiguousarray(v.numpy())
    return out


@dataclass
class Job:
    """One worker's share of a sampling phase; ``label`` names its tasks in error messages."""

    params: dict[str, np.ndarray]
    tasks: list[dict]
    episodes: int
    seed: int
    label: str

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`RolloutWorker.sample`."""
        return {
            "params": self.params,
            "tasks": self.tasks,
            "episodes": self.episodes,
            "seed": self.seed,
        }
