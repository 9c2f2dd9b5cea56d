"""Persistent worker processes for the ``process`` sampler backend.

Each worker is a ``spawn`` process (never ``fork``: torch and MuJoCo keep thread pools that a
forked child inherits in a broken state) running one :class:`~metarl.rl.sampling.workers.RolloutWorker`
with ``torch.set_num_threads(1)``. Per sampling phase the parent sends each busy worker one
message (its parameters, tasks, episode count and seed) and receives one message back (its
trajectories as numpy arrays); nothing crosses the pipe per step.

Failures never hang the parent: it waits on the workers' pipes *and* their process sentinels
(:func:`multiprocessing.connection.wait`), so a worker that dies (killed, segfault, out of memory)
is noticed at once and reported as a ``RuntimeError`` naming the worker, its pid, how it died and
the tasks it was running; the pool is then shut down and restarted by the next :meth:`run`. An
exception inside a worker (an env that raises, an invalid task) is sent back with its traceback
and re-raised as a ``RuntimeError`` naming the worker and tasks, once the other workers have
answered (the pool stays usable). With ``timeout_s``, a phase that takes longer fails the same way.

Workers ignore SIGINT and SIGTERM (Ctrl-C, or a scheduler's SIGTERM to the whole process group,
reaches the parent too, which finishes its iteration with them and then shuts them down), leave
when their pipe closes (the parent died), and are shut down by :meth:`ProcessPool.close` and at
interpreter exit.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from metarl.faults import EnvironmentFault

from .rollout import Arrays
from .workers import Job, RolloutWorker, WorkerSpec, close_at_exit


def _serve(conn: Connection, spec_bytes: bytes) -> None:
    """A worker's main loop: one request in, one reply out, until ``None`` or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops on them and closes us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker: RolloutWorker | Exception
    try:
        worker = RolloutWorker(pickle.loads(spec_bytes), torch_threads=1)
    except Exception as e:  # reported with the first request
        worker = e
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        try:
            if isinstance(worker, Exception):
                raise worker
            reply: tuple[str, Any] = ("ok", worker.sample(**request))
        except Exception as e:
            reply = ("error", _error_payload(e))
        try:
            conn.send(reply)
        except (OSError, ValueError):
            break
    if isinstance(worker, RolloutWorker):
        worker.close()


def _error_payload(e: BaseException) -> dict[str, Any]:
    try:
        exc: bytes | None = pickle.dumps(e)
    except Exception:
        exc = None
    return {
        "type": type(e).__name__,
        "message": str(e),
        "traceback": "".join(traceback.format_exception(e)),
        "exception": exc,
    }


@dataclass(eq=False)
class _Worker:
    index: int
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection

    @property
    def name(self) -> str:
        return f"sampler worker {self.index} (pid {self.process.pid})"

    def death(self) -> str:
        """How the process ended, e.g. ``killed by SIGKILL`` or ``exit code 1``."""
        self.process.join(timeout=2.0)
        code = self.process.exitcode
        if code is None:
            return "closed its pipe"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


class ProcessPool:
    """``num_workers`` persistent worker processes running :class:`RolloutWorker` (see module
    docstring). ``start_method``: ``spawn`` (default) or ``forkserver``."""

    def __init__(
        self,
        spec: WorkerSpec,
        num_workers: int,
        timeout_s: float | None = None,
        start_method: str = "spawn",
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(
                f"start_method must be 'spawn' or 'forkserver' (fork breaks torch and MuJoCo "
                f"threads), got {start_method!r}"
            )
        self.num_workers = int(num_workers)
        self.timeout_s = timeout_s
        self._spec_bytes = pickle.dumps(spec)
        self._ctx = mp.get_context(start_method)
        self._workers: list[_Worker] = []
        self._start()
        close_at_exit(self)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (empty while the pool is down)."""
        return [w.process.pid for w in self._workers]

    def _start(self) -> None:
        for i in range(self.num_workers):
            parent, child = self._ctx.Pipe(duplex=True)
            process = self._ctx.Process(
                target=_serve,
                args=(child, self._spec_bytes),
                name=f"metarl-sampler-{i}",
                daemon=True,
            )
            process.start()
            child.close()
            self._workers.append(_Worker(i, process, parent))

    def run(self, jobs: list[Job]) -> list[Arrays]:
        """Send ``jobs[i]`` to worker ``i`` and return the results in order."""
        if len(jobs) > self.num_workers:
            raise ValueError(f"{len(jobs)} jobs for {self.num_workers} workers")
        if not self._workers:
            self._start()
        try:
            results, errors = self._run(jobs)
        except BaseException:
            self.close(wait_s=0.0)  # a dead, stuck or interrupted phase: replies in the pipes
            raise
        if errors:
            worker, job, payload = errors[0]
            cause = pickle.loads(payload["exception"]) if payload["exception"] else None
            raise RuntimeError(
                f"{worker.name} raised {payload['type']}: {payload['message']} while running "
                f"{job.label}\n\nworker traceback:\n{payload['traceback']}"
            ) from cause
        return results

    def _run(self, jobs: list[Job]) -> tuple[list[Any], list[tuple[_Worker, Job, dict]]]:
        busy = dict(zip(self._workers, jobs))
        for worker, job in busy.items():
            try:
                worker.conn.send(job.call_kwargs())
            except OSError:
                raise self._died(worker, job) from None
        results: list[Any] = [None] * len(jobs)
        errors = []
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while busy:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                running = "; ".join(f"{w.name}: {j.label}" for w, j in busy.items())
                raise EnvironmentFault(
                    f"sampling did not finish within timeout_s={self.timeout_s} s; still "
                    f"running: {running}. The workers were shut down and start again on the "
                    "next sample() call; raise sampler.timeout_s if the phase is just long"
                )
            handles = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            ready = set(wait(handles, timeout=remaining))
            for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                job = busy.pop(worker)
                try:
                    if not worker.conn.poll():
                        raise EOFError
                    status, value = worker.conn.recv()
                except (EOFError, OSError):
                    raise self._died(worker, job) from None
                if status == "ok":
                    results[worker.index] = value
                else:
                    errors.append((worker, job, value))
        return results, errors

    @staticmethod
    def _died(worker: _Worker, job: Job) -> EnvironmentFault:
        return EnvironmentFault(
            f"{worker.name} died ({worker.death()}) while running {job.label}; the sampler's "
            "workers were shut down and start again on the next sample() call"
        )

    def close(self, wait_s: float = 2.0) -> None:
        """Ask every worker to leave, then terminate (and kill) any still there after
        ``wait_s`` seconds."""
        workers, self._workers = self._workers, []
        for w in workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        for w in workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(timeout=1.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=1.0)
            w.conn.close()
