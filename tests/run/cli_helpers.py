from __future__ import annotations

import os
import subprocess
import sys
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
