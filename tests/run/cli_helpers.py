from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SINUSOID = ROOT / "configs" / "fewshot" / "sinusoid_maml.yaml"


def quick_args(iterations: int = 40, log_every: int = 5, checkpoint_every: int = 10) -> list[str]:
    """Arguments of a quick sinusoid run: deterministic settings, ``iterations`` iterations."""
    settings = {
        "train.log_every": log_every,
        "train.checkpoint_every": checkpoint_every,
        "eval.steps": 2,
        "algo.task_batching": "vmap",
        "train.num_threads": 1,
    }
    overrides = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    return ["--iterations", str(iterations), "--eval-tasks", "20", *overrides]


QUICK = quick_args()


@contextmanager
def terminal_sigint() -> Iterator[None]:
    """SIGINT handled as a terminal's Ctrl-C has it (KeyboardInterrupt), also when the suite was
    started in the background by a script: ``cmd &`` ignores SIGINT and children inherit that,
    while a Python handler, unlike SIG_IGN, is reset to the default at exec, so a child started
    inside this block sees SIGINT too."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m metarl.cli ARGS`` as a user would, with ``env`` added to the environment."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "metarl.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
