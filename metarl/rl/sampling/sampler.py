"""Closed-loop sampling of a meta-batch: ``sample(params, tasks, episodes_per_task)``.

Every backend runs the same loop (:func:`metarl.rl.sampling.rollout.rollout`: one batched policy call per
step over all of its copies, per-task parameters stacked, noise from a seeded numpy generator)
and returns the same :class:`~metarl.rl.trajectories.Trajectories` ``[tasks, episodes, H, ...]``:

* ``batched`` / ``vector``: in this process, all ``tasks * episodes`` copies in one vector env;
  the noise comes from the sampler's generator, so both give the same trajectories for a seed;
* ``process`` / ``ray``: the slots are split into rectangles (:func:`metarl.rl.sampling.workers.split_slots`)
  that persistent workers run as whole episodes with their own copy of the policy; each worker
  gets its parameters once per call and sends its trajectories back once. Each part's seed is
  drawn from the sampler's generator, so the same seed and worker count give the same
  trajectories (which differ from the in-process backends', with the same distribution).

Sampling runs on the CPU (the envs are numpy). A learner on another device (``device``, a GPU)
costs one transfer each way per sampling phase: :meth:`Sampler.sample` copies the parameters to
the CPU once, rolls out with a CPU copy of the policy (made at construction, buffers included),
and returns the trajectories moved to ``device`` in one go.

In this process sampling runs under ``torch.no_grad()`` with ``torch.set_num_threads(num_threads)``
and restores the previous count afterwards. The default (None) keeps the process's count where
idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``, which the ``metarl`` command sets; see
:mod:`metarl.threads`) and uses 1 otherwise, since spinning idle torch threads starve MuJoCo's
stepping threads (measured: a HalfCheetahVel sampling phase 1.65 s with 2 spinning threads
against 1.25 s with 1; 0.98 s with 2 sleeping ones). Workers use one torch thread and
``cores // workers`` MuJoCo threads.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from metarl.core import CPU
from metarl.threads import idle_threads_sleep, torch_threads

from ..policies import Policy
from ..trajectories import Trajectories
from .actions import ActionMap
from .backends import available_cores, env_horizon, env_spec, plan_sampler
from .rollout import Arrays, join_arrays, to_trajectories
from .step_budget import fill_to_steps
from .workers import Job, RolloutWorker, WorkerSpec, is_stacked, part_params, split_slots


class Sampler:
    """Samples episodes of ``env_id`` with a functional ``policy``.

    ``backend``: ``auto``, ``batched``, ``vector``, ``process`` or ``ray`` (see
    :mod:`metarl.rl.sampling.backends`); ``num_workers``: workers of ``process``/``ray`` (default: one per
    core / per cluster CPU); ``address``: the Ray cluster (``ray`` only; None starts a local
    runtime); ``timeout_s``: longest a worker phase may take (default: no limit; dead workers are
    noticed at once regardless); ``action_map``: how Gaussian actions reach the env (default:
    clipped to the bounds, see :mod:`metarl.rl.sampling.actions`); ``device``: where
    :meth:`sample` returns the trajectories (the learner's device; default: the CPU, where they
    are made); ``budget``: what bounds each task's batch, ``episodes`` (exactly
    ``episodes_per_task`` episodes) or ``steps`` (whole episodes until ``episodes_per_task x
    horizon`` env steps, as the MAML and ProMP code sample; :mod:`metarl.rl.sampling.step_budget`).
    Call :meth:`close` (or use ``with``) to stop workers and envs.
    """

    def __init__(
        self,
        env_id: str,
        policy: Policy,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        backend: str = "auto",
        horizon: int | None = None,
        num_threads: int | None = None,
        rng: np.random.Generator | None = None,
        action_map: ActionMap | None = None,
        num_workers: int | None = None,
        address: str | None = None,
        timeout_s: float | None = None,
        device: torch.device | str = "cpu",
        budget: str = "episodes",
    ) -> None:
        if budget not in ("episodes", "steps"):
            raise ValueError(f"sampler budget must be 'episodes' or 'steps', got {budget!r}")
        self.plan = plan_sampler(env_id, backend, num_workers)
        if address is not None and self.plan.backend != "ray":
            raise ValueError(
                f"sampler address {address!r} is only used by the ray backend, but the backend "
                f"is {self.plan.backend!r}; set sampler.backend: ray or remove the address"
            )
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.device = torch.device(device)
        self.budget = budget
        #: the policy the rollouts call: ``policy`` itself on the CPU, else a CPU copy of it
        self.policy = policy if _on_cpu(policy) else copy.deepcopy(policy).to(CPU)
        self.backend = self.plan.backend
        self.horizon = env_horizon(env_id, horizon)
        self.num_threads = num_threads
        self.action_map = action_map or ActionMap()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        #: wall-clock seconds and env steps spent in :meth:`sample` so far (for throughput logs)
        self.total_time = 0.0
        self.total_steps = 0
        gym_spec = env_spec(env_id)
        in_worker = "batched" if gym_spec.vector_entry_point is not None else "vector"
        spec = WorkerSpec(
            env_id,
            self.policy,
            self.backend if self.backend in ("batched", "vector") else in_worker,
            self.horizon,
            self.env_kwargs,
            self.action_map,
            gym_spec=gym_spec,
        )
        self._local: RolloutWorker | None = None
        self._pool: Any = None
        if self.backend == "process":
            from .process_pool import ProcessPool

            workers = int(self.plan.num_workers or available_cores())
            spec.nthread = max(1, available_cores() // workers)
            self._pool = ProcessPool(spec, workers, timeout_s)
        elif self.backend == "ray":
            from .ray_pool import RayPool

            spec.nthread = 1  # each actor holds one CPU
            self._pool = RayPool(spec, self.plan.num_workers, address, timeout_s)
            cpus = self._pool.cluster_cpus
            self.plan = replace(
                self.plan,
                num_workers=self._pool.num_workers,
                reason=f"sampler.backend: ray; a Ray cluster of {cpus} CPU{'s' * (cpus != 1)}",
            )
        else:
            self._local = RolloutWorker(spec)
        self.num_workers = self.plan.num_workers

    @classmethod
    def from_config(
        cls,
        cfg: Any,
        policy: Policy,
        rng: np.random.Generator,
        device: torch.device | str = "cpu",
    ) -> Sampler:
        """From an RL config's ``env`` and ``sampler`` sections
        (:class:`metarl.rl.config.RLConfig`), returning trajectories on ``device``."""
        sc = cfg.sampler
        return cls(
            cfg.env.id,
            policy,
            env_kwargs=cfg.env.kwargs,
            backend=sc.backend,
            horizon=cfg.env.horizon,
            num_threads=sc.num_threads,
            rng=rng,
            action_map=ActionMap(sc.clip_actions, sc.rescale_actions, sc.action_scale),
            num_workers=sc.num_workers,
            address=sc.address,
            timeout_s=sc.timeout_s,
            device=device,
            budget=sc.budget,
        )

    def describe(self) -> str:
        """The one line printed at the start of training, e.g.
        ``sampler: batched (HalfCheetahVel has a native batched env; 2 cores)``."""
        return self.plan.describe()

    def env(self, num_envs: int) -> VectorEnv:
        """The in-process backends' cached vector env with ``num_envs`` copies."""
        if self._local is None:
            raise ValueError(f"the {self.backend} backend keeps its envs in its workers")
        return self._local.env(num_envs)

    def close(self) -> None:
        """Close the envs and shut the workers down (idempotent)."""
        if self._local is not None:
            self._local.close()
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sampling_threads(self) -> int:
        """torch threads while this process samples: ``num_threads`` if set, else the process's
        count where idle threads sleep, else 1 (see the module docstring)."""
        if self.num_threads is not None:
            return self.num_threads
        return torch.get_num_threads() if idle_threads_sleep() else 1

    def sample(
        self,
        params: Mapping[str, Tensor],
        tasks: list[dict],
        episodes_per_task: int,
        rng: np.random.Generator | None = None,
    ) -> Trajectories:
        """Run ``episodes_per_task`` episodes of every task with ``params`` (with ``budget``
        ``steps``: whole episodes until each task has ``episodes_per_task x horizon`` env steps;
        tasks that keep fewer episodes than others are padded with empty ones).

        ``params`` is shared (one policy for all tasks) or stacked ``[tasks, ...]`` (one policy
        per task), on any device. ``rng`` defaults to the sampler's own generator. The
        trajectories are on the sampler's ``device``.
        """
        if episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
        if not tasks:
            raise ValueError("sample needs at least one task")
        rng = self.rng if rng is None else rng
        params = {k: v.detach().to(CPU) for k, v in params.items()}  # one transfer
        stacked = is_stacked(self.policy, params)
        if stacked and next(iter(params.values())).shape[0] != len(tasks):
            rows = next(iter(params.values())).shape[0]
            raise ValueError(
                f"stacked parameters hold {rows} policies for {len(tasks)} tasks; stack one "
                "parameter set per task, or pass shared parameters"
            )
        start = time.perf_counter()
        arrays = self._arrays(params, tasks, episodes_per_task, rng, stacked)
        if self.budget == "steps":

            def run(task_indices: Sequence[int], episodes: int) -> Arrays:
                index = torch.as_tensor(list(task_indices))
                part = {k: v[index] for k, v in params.items()} if stacked else params
                subset = [tasks[i] for i in task_indices]
                return self._arrays(part, subset, episodes, rng, stacked)

            arrays = fill_to_steps(arrays, episodes_per_task * self.horizon, run, tasks)
        traj = to_trajectories(arrays)
        self.total_time += time.perf_counter() - start
        self.total_steps += traj.env_steps
        return traj.to(self.device)  # one transfer (none on the CPU)

    def _arrays(
        self,
        params: Mapping[str, Tensor],
        tasks: list[dict],
        episodes: int,
        rng: np.random.Generator,
        stacked: bool,
    ) -> Arrays:
        """One round: ``episodes`` episodes of every task, on this process or the workers
        (``stacked``: ``params`` hold one policy per task)."""
        if self._local is not None:
            with torch_threads(self.sampling_threads()):
                return self._local.run(params, tasks, episodes, rng)
        parts, axis = split_slots(len(tasks), episodes, self._pool.num_workers)
        seeds = rng.integers(2**63 - 1, size=len(parts))
        jobs = [
            Job(
                part_params(params, part, stacked),
                list(tasks[part.task_start : part.task_stop]),
                part.episodes,
                int(seed),
                part.task_text(tasks),
            )
            for part, seed in zip(parts, seeds)
        ]
        return join_arrays(self._pool.run(jobs), axis)


def _on_cpu(policy: Policy) -> bool:
    return all(t.device == CPU for t in (*policy.parameters(), *policy.buffers()))
