"""``metarl evaluate RUN --checkpoint all``: a learning curve after the fact, from the
checkpoints a run kept (``train.keep_checkpoints_every``).

Each kept checkpoint is evaluated as ``metarl evaluate`` evaluates the last one (same held-out
tasks and episode seeds, so the points differ only by the policy), each evaluation saved beside
the others (``evaluations/<split>-<n>tasks-iteration-N.json``), and the return after each
adaptation step is drawn against the iteration (``...-by-iteration.png``): the held-out learning
curve of a run that did not set ``train.eval_every``, or at another split, task count, env or
task file. A checkpoint already evaluated the same way (``metarl evaluate --checkpoint N`` while
the run trained on) is not evaluated again: its saved evaluation is read back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from rich.table import Table

from metarl.core import AdaptationCurve

from .checkpoint import load_checkpoint
from .errors import UserError
from .plots import plot_learning_curves
from .points import is_trial_curve, point_names
from .rundir import evaluation_path, kept_checkpoints
from .task_file import read_task_file
from .trainer import evaluate_restored, opened_experiment, restore_state


def evaluate_kept(
    run_dir: Path,
    config: BaseModel,
    split: str,
    tasks: int | None,
    overrides: Sequence[str] = (),
    task_file: Path | None = None,
) -> tuple[dict[int, AdaptationCurve], Path, list[int]]:
    """Evaluate every kept checkpoint of ``run_dir`` (on the tasks of ``task_file`` when
    given); returns the curves by iteration, the figure's path and the iterations whose saved
    evaluation was read back instead."""
    kept = kept_checkpoints(run_dir)
    if not kept:
        raise UserError(
            f"{run_dir} kept no checkpoints; train with `--set train.keep_checkpoints_every=N` "
            "(a multiple of train.checkpoint_every) to keep one every N iterations"
        )
    task_list = None if task_file is None else read_task_file(task_file)
    num_tasks = len(task_list) if task_list is not None else tasks or config.eval.tasks
    curves = {}
    for iteration in kept:
        path = evaluation_path(run_dir, split, num_tasks, overrides, iteration, task_file)
        saved = _saved_curve(path, iteration)
        if saved is not None:
            curves[iteration] = saved
    reused = list(curves)
    pending = {i: path for i, path in kept.items() if i not in curves}
    if pending:
        with opened_experiment(config) as experiment:  # built once, restored per checkpoint
            for iteration, path in pending.items():
                state = load_checkpoint(path)
                restore_state(experiment, state, run_dir, path)
                curves[iteration] = evaluate_restored(
                    experiment,
                    state,
                    run_dir,
                    split,
                    tasks,
                    overrides,
                    iteration,
                    task_file,
                    task_list,
                )
    curves = dict(sorted(curves.items()))
    first = next(iter(curves.values()))
    names = _point_names(first, config)
    series = {
        names[s]: (list(curves), [curve.mean[k] for curve in curves.values()])
        for k, s in enumerate(first.steps)
    }
    stem = evaluation_path(run_dir, split, first.num_tasks, overrides, None, task_file).stem
    out = run_dir / "evaluations" / f"{stem}-by-iteration.png"
    plot_learning_curves(series, f"{first.metric} ({split}, {first.num_tasks} tasks)", out)
    return curves, out, reused


def _saved_curve(path: Path, iteration: int) -> AdaptationCurve | None:
    """The curve an earlier ``metarl evaluate --checkpoint N`` saved at ``path``, or None when
    there is none (or it is unreadable, or of another iteration: it is then evaluated again)."""
    try:
        record = json.loads(path.read_text())
        if record.get("iteration") != iteration:
            return None
        return AdaptationCurve(**record["eval"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def kept_table(curves: dict[int, AdaptationCurve], title: str, config: BaseModel) -> Table:
    """One row per kept checkpoint: the mean ± standard error over tasks at every point."""
    first = next(iter(curves.values()))
    names = _point_names(first, config)
    table = Table(title=title)
    table.add_column("iteration", justify="right")
    for s in first.steps:
        table.add_column(f"{names[s]} ({first.metric})", justify="right")
    for iteration, curve in curves.items():
        cells = [f"{m:.4g} ± {e:.2g}" for m, e in zip(curve.mean, curve.stderr)]
        table.add_row(str(iteration), *cells)
    return table


def _point_names(curve: AdaptationCurve, config: BaseModel) -> list[str]:
    return point_names(max(curve.steps) + 1, is_trial_curve(config))
