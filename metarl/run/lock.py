"""One trainer per run directory: an advisory ``flock`` on ``RUN_DIR/.lock``.

The kernel drops the lock when the process exits, however it exits (SIGKILL included), so a
killed run can always be resumed, while a second ``metarl train --resume`` on a run that is still
training is refused instead of interleaving two writers.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from .errors import UserError


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        f = self.path.open("a+")  # the run directory exists: create_run_dir made it
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            f.close()
            raise UserError(
                f"{self.path.parent} is being trained right now by {owner}; wait for it to "
                "finish or stop it, then resume (nothing was changed)"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None


def lock_holder(run_dir: Path) -> str | None:
    """Who trains ``run_dir`` right now (``"pid N"``), or None if no process holds its lock;
    takes nothing (a lock it gets is released at once)."""
    path = Path(run_dir) / ".lock"
    if not path.is_file():
        return None
    with path.open("r") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None
