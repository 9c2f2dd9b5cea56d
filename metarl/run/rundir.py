"""The run directory: resolved config, metrics, TensorBoard events, checkpoints, summary, plots.

::

    runs/sinusoid_maml-20261129-101500/
        config.yaml          the resolved config (after --set / --iterations / --seed)
        provenance.jsonl     one line per start and resume: its iteration, the git commit,
                             package versions, CPU and torch's instruction set
        metrics.jsonl        one row per logged iteration
        tensorboard/         the same scalars as events
        checkpoints/last.pt  written atomically every train.checkpoint_every iterations
        checkpoints/iteration-N.pt  kept every train.keep_checkpoints_every (if set)
        summary.json         the final evaluation (eval.metric, steps, mean, ci95, stderr, gain_stderr,
                             each task's values and, meta-RL, its task dict)
        evaluations/         re-evaluations (``metarl evaluate``), one JSON file each
        *.png                the domain's plots
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from .checkpoint import CHECKPOINT_NAME
from .config import dump_config, read_config_file, validate
from .errors import UserError

CONFIG_NAME = "config.yaml"


def default_run_dir(config_path: str | Path, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{Path(config_path).stem}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def refuse_existing_run(path: Path) -> None:
    """A new run never reuses a directory that holds one."""
    if (path / CONFIG_NAME).exists() or (path / "checkpoints").exists():
        raise UserError(
            f"{path} already holds a run; continue it with `metarl train --resume {path}` "
            "or choose another --run-dir (nothing was changed)"
        )


def create_run_dir(path: Path, config: BaseModel) -> Path:
    """Make a new run directory and write the resolved config; never reuse an existing run."""
    refuse_existing_run(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_NAME).write_text(dump_config(config))
    return path


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / CHECKPOINT_NAME


def kept_checkpoint_path(run_dir: Path, iteration: int) -> Path:
    """A checkpoint kept for good (``train.keep_checkpoints_every``)."""
    return run_dir / "checkpoints" / f"iteration-{iteration}.pt"


def kept_checkpoints(run_dir: Path) -> dict[int, Path]:
    """The run's kept checkpoints by iteration, in order."""
    found = {}
    for path in (run_dir / "checkpoints").glob("iteration-*.pt"):
        number = path.stem.removeprefix("iteration-")
        if number.isdigit():
            found[int(number)] = path
    return dict(sorted(found.items()))


def run_checkpoint(run_dir: Path, iteration: int | None = None) -> Path:
    """The run's last checkpoint, or its kept one of ``iteration``; a kept one that is not
    there is a :class:`UserError` naming those that are."""
    if iteration is None:
        return checkpoint_path(run_dir)
    path = kept_checkpoint_path(run_dir, iteration)
    if not path.is_file():
        kept = ", ".join(str(i) for i in kept_checkpoints(run_dir))
        have = (
            f"it kept those of iterations {kept}"
            if kept
            else "it kept none: train.keep_checkpoints_every keeps them"
        )
        raise UserError(f"{run_dir} has no checkpoint of iteration {iteration}; {have}")
    return path


def evaluation_path(
    run_dir: Path,
    split: str,
    num_tasks: int,
    overrides: Sequence[str] = (),
    iteration: int | None = None,
    task_file: Path | None = None,
) -> Path:
    """``evaluations/<split>-<n>tasks.json``, or ``...-<overrides>.json`` for an evaluation under
    changed keys (``eval.inner_lrs=[0.2,0.1]``: ``test-40tasks-eval.inner_lrs=_0.2,0.1_.json``);
    a kept checkpoint's (``iteration``) ends in ``-iteration-N``; one on a task file's tasks
    names the file (``test-40tasks-maml_code_half_cheetah_vel.json``)."""
    name = f"{split}-{num_tasks}tasks"
    if task_file is not None:
        name += f"-{Path(task_file).stem}"
    if iteration is not None:
        name += f"-iteration-{iteration}"
    if overrides:
        name += "-" + re.sub(r"[^A-Za-z0-9_.=,+-]", "_", "-".join(overrides))
    return run_dir / "evaluations" / f"{name}.json"


def load_run_config(run_dir: str | Path) -> BaseModel:
    """The resolved config saved in a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    if not (run_dir / CONFIG_NAME).is_file():
        raise UserError(f"{run_dir} is not a metarl run directory (no {CONFIG_NAME} inside)")
    return validate(read_config_file(run_dir / CONFIG_NAME), str(run_dir / CONFIG_NAME))
