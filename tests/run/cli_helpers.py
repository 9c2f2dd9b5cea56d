from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SINUSOID = ROOT / "configs" / "fewshot" / "sinusoid_maml.yaml"
# a quick sinusoid run: deterministic settings, a handful of iterations
QUICK = [
    "--iterations",
    "40",
    "--eval-tasks",
    "20",
    "--set",
    "train.log_every=5",
    "--set",
    "train.checkpoint_every=10",
    "--set",
    "eval.steps=2",
    "--set",
    "algo.task_batching=vmap",
    "--set",
    "train.num_threads=1",
]


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
