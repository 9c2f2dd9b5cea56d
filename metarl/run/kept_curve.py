"""``metarl evaluate RUN --checkpoint all``: a learning curve after the fact, from the
checkpoints a run kept (``train.keep_checkpoints_every``).

Each kept checkpoint is evaluated as ``metarl evaluate`` evaluates the last one (same held-out
tasks and episode seeds, so the points differ only by the policy), each evaluation saved beside
the others (``evaluations/<split>-<n>tasks-iteration-N.json``), and the return after each
adaptation step is drawn against the iteration (``...-by-iteration.png``): the held-out learning
curve of a run that did not set ``train.eval_every``, or at another split, task count or env.
"""

from __future__ import annotations

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
from .trainer import evaluate_restored, opened_experiment, restore_state


def evaluate_kept(
    run_dir: Path,
    config: BaseModel,
    split: str,
    tasks: int | None,
    overrides: Sequence[str] = (),
) -> tuple[dict[int, AdaptationCurve], Path]:
    """Evaluate every kept checkpoint of ``run_dir``; returns the curves by iteration and the
    figure's path."""
    kept = kept_checkpoints(run_dir)
    if not kept:
        raise UserError(
            f"{run_dir} kept no checkpoints; train with `--set train.keep_checkpoints_every=N` "
            "(a multiple of train.checkpoint_every) to keep one every N iterations"
        )
    curves = {}
    with opened_experiment(config) as experiment:  # built once, restored per checkpoint
        for iteration, path in kept.items():
            state = load_checkpoint(path)
            restore_state(experiment, state, run_dir, path)
            curves[iteration] = evaluate_restored(
                experiment, state, run_dir, split, tasks, overrides, iteration
            )
    first = next(iter(curves.values()))
    names = _point_names(first, config)
    series = {
        names[s]: (list(curves), [curve.mean[k] for curve in curves.values()])
        for k, s in enumerate(first.steps)
    }
    stem = evaluation_path(run_dir, split, first.num_tasks, overrides).stem
    out = run_dir / "evaluations" / f"{stem}-by-iteration.png"
    plot_learning_curves(series, f"{first.metric} ({split}, {first.num_tasks} tasks)", out)
    return curves, out


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
