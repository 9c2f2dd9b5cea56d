"""Stopping a training run cleanly on a signal.

While the training loop runs, the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster
scheduler's warning before it ends a job: Slurm's ``--signal``, Kubernetes' grace period) does
not interrupt anything: it asks the loop to stop once the current iteration is done. The loop
then writes a checkpoint of that iteration and raises :class:`RunStopped`, so ``metarl train
--resume`` continues exactly where it stopped and no iteration is lost. A second signal
interrupts at once (``KeyboardInterrupt``: the run continues from its last periodic checkpoint).

A SIGINT that the process ignores (a job started with ``&`` from a script, ``nohup``) stays
ignored, and off the main thread (where Python cannot install handlers) signals behave as
before.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunStopped(KeyboardInterrupt):
    """A run stopped on a signal after checkpointing iteration ``iteration``: resumable with
    nothing lost. A ``KeyboardInterrupt``, so that whatever runs several trainings in a row
    (``metarl baselines``) stops as a whole."""

    def __init__(
        self, run_dir: Path, iteration: int, signal_name: str, continue_with: str | None = None
    ) -> None:
        self.run_dir, self.iteration, self.signal_name = run_dir, iteration, signal_name
        how = continue_with or f"`metarl train --resume {run_dir}`"
        super().__init__(
            f"stopped on {signal_name} at iteration {iteration} of {run_dir}, checkpointed; "
            f"continue with {how}"
        )

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 128 + its number."""
        return 128 + int(signal.Signals[self.signal_name])


class StopRequest:
    """Set by the first signal; the training loop polls :attr:`signal_name`."""

    def __init__(self) -> None:
        self.signal_name: str | None = None


@contextmanager
def stop_after_iteration() -> Iterator[StopRequest]:
    """Within the block, the first SIGINT or SIGTERM sets the yielded request (and says so on
    stderr), a second raises ``KeyboardInterrupt``; the previous handlers come back on exit."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if request.signal_name is not None:
            raise KeyboardInterrupt
        request.signal_name = signal.Signals(signum).name
        print(
            f"\n{request.signal_name}: stopping once this iteration is done and checkpointed "
            "(send it again to stop at once and lose the iteration)",
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, before in previous.items():
        if before is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield request
    finally:
        for s, before in previous.items():
            if before is not signal.SIG_IGN:  # None: a handler not set from Python
                signal.signal(s, signal.SIG_DFL if before is None else before)
