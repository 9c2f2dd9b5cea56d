"""Ray actors for the ``ray`` sampler backend: the same :class:`~metarl.rl.sampling.workers.RolloutWorker`
as the ``process`` backend, one actor per worker (``num_cpus=1`` each, so one physics thread).

``address``: ``None`` starts a local Ray runtime (``ray.init(num_cpus=..., include_dashboard=
False)``, shut down again by :meth:`RayPool.close`); ``"auto"`` joins the cluster started on this
machine with ``ray start``; ``"host:port"`` (or ``"ray://host:port"``) joins a remote one. A Ray
runtime that is already initialised in this process is used as it is. ``num_workers`` defaults to
one per CPU of the cluster; asking for more than the cluster's free CPUs is an error (the actors
would wait for resources forever).

Every worker machine needs the same environment as the driver (metarl and its dependencies
installed, e.g. ``pip install 'metarl[ray]'`` in the same image); envs registered by the driver's
own code are re-registered in the workers from their spec when the entry point is importable.
Failures are reported like the process backend's: a dead actor or a raising env gives a
``RuntimeError`` naming the worker and its tasks; dead actors are replaced on the next phase.
"""

from __future__ import annotations

from typing import Any

from metarl.faults import EnvironmentFault

from .backends import available_cores
from .rollout import Arrays
from .workers import Job, RolloutWorker, WorkerSpec, close_at_exit


def import_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` that names the extra to install."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "sampler.backend: ray needs Ray: pip install 'metarl[ray]' (or pip install "
            "'ray[default]'), or use sampler.backend: process on one machine"
        ) from e
    return ray


class RayPool:
    """``num_workers`` Ray actors running :class:`RolloutWorker` (see module docstring)."""

    def __init__(
        self,
        spec: WorkerSpec,
        num_workers: int | None = None,
        address: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        ray = import_ray()
        self._ray = ray
        self._owns_runtime = False
        self._actors: list[Any] = []
        if not ray.is_initialized():
            if address is None:
                ray.init(
                    num_cpus=num_workers or available_cores(),
                    include_dashboard=False,
                    log_to_driver=False,
                )
                self._owns_runtime = True
            else:
                ray.init(address=address, log_to_driver=False)
        free = int(ray.available_resources().get("CPU", 0))
        #: CPUs of the whole cluster (for the line printed at start)
        self.cluster_cpus = int(ray.cluster_resources().get("CPU", 0))
        if num_workers is None:
            num_workers = max(1, self.cluster_cpus)
        if num_workers > free:
            self.close()
            raise ValueError(
                f"sampler.num_workers={num_workers} but the Ray cluster has {free} free CPUs "
                "(each worker takes one); lower num_workers or add nodes to the cluster"
            )
        self.num_workers = int(num_workers)
        self.timeout_s = timeout_s
        self._spec = spec
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(RolloutWorker)
        self._start()
        close_at_exit(self)

    def _start(self) -> None:
        self._actors = [self._actor_cls.remote(self._spec, 1) for _ in range(self.num_workers)]

    def run(self, jobs: list[Job]) -> list[Arrays]:
        """Run ``jobs[i]`` on actor ``i`` and return the results in order."""
        ray = self._ray
        if len(jobs) > self.num_workers:
            raise ValueError(f"{len(jobs)} jobs for {self.num_workers} workers")
        if not self._actors:
            self._start()
        pending = {
            actor.sample.remote(**job.call_kwargs()): i
            for i, (actor, job) in enumerate(zip(self._actors, jobs))
        }
        results: list[Any] = [None] * len(jobs)
        errors: list[tuple[int, BaseException]] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=self.timeout_s)
            if not done:
                running = "; ".join(f"worker {i}: {jobs[i].label}" for i in pending.values())
                self._kill_actors()
                raise EnvironmentFault(
                    f"sampling did not finish within timeout_s={self.timeout_s} s; still "
                    f"running: {running}. The actors were killed and start again on the next "
                    "sample() call; raise sampler.timeout_s if the phase is just long"
                )
            i = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except ray.exceptions.RayActorError as e:
                self._kill_actors()
                raise EnvironmentFault(
                    f"sampler worker {i} (Ray actor) died while running {jobs[i].label}: {e}; "
                    "the actors were killed and start again on the next sample() call"
                ) from None
            except ray.exceptions.RayTaskError as e:
                errors.append((i, e))
        if errors:
            i, e = errors[0]
            cause = getattr(e, "cause", None)
            kind = type(cause).__name__ if cause is not None else type(e).__name__
            raise RuntimeError(
                f"sampler worker {i} (Ray actor) raised {kind}: {cause} while running "
                f"{jobs[i].label}\n\nworker traceback:\n{e}"
            ) from cause
        return results

    def _kill_actors(self) -> None:
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:  # already dead
                pass
        self._actors = []

    def close(self) -> None:
        """Kill the actors; shut Ray down if this pool started it."""
        if self._ray.is_initialized():
            self._kill_actors()
            if self._owns_runtime:
                self._ray.shutdown()
        self._owns_runtime = False
