"""The outer loop shared by every domain: iterate, log, checkpoint, resume, evaluate, summarise.

The domain's :class:`~metarl.run.experiment.Experiment` owns the maths; this file owns the
plumbing, written once.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from metarl.core import AdaptationCurve
from metarl.faults import EnvironmentFault

from .checkpoint import keep_checkpoint, load_checkpoint, save_checkpoint
from .config import dump_config
from .device import CPU, describe_device, device_summary, resolve_device, to_device
from .errors import UserError
from .experiment import Experiment
from .lock import RunLock
from .metrics import MetricsLog
from .plots import plot_adaptation_curve
from .points import is_trial_curve, point_names
from .progress import ProgressReporter
from .provenance import append_provenance, provenance
from .rundir import (
    CONFIG_NAME,
    checkpoint_path,
    create_run_dir,
    evaluation_path,
    kept_checkpoint_path,
    load_run_config,
    run_checkpoint,
)
from .stop import RunStopped, stop_after_iteration
from .task_file import read_task_file


def run_device(config: BaseModel) -> torch.device:
    """The device a config's run computes on: ``train.device`` resolved on this machine (a
    missing GPU is a :class:`UserError`). The Stable-Baselines3 baselines (``algo.name: sb3``)
    train on the CPU: ``auto`` picks it for them, an explicit GPU is an error naming the fix."""
    name = config.train.device  # type: ignore[attr-defined]
    device = resolve_device(name)
    if config.domain == "rl" and config.algo.name == "sb3":  # type: ignore[attr-defined]
        if device.type != "cpu" and name != "auto":  # the config normalises the name
            raise UserError(
                f"`train.device` = {name!r}: the Stable-Baselines3 baselines train on the CPU "
                "(meta-RL's learners use the GPU); set `train.device: cpu` or `auto`"
            )
        return CPU
    return device


def experiment_device(experiment: Experiment) -> torch.device:
    """Where ``experiment`` computes (experiments without a ``device`` run on the CPU)."""
    return getattr(experiment, "device", CPU)


def build_experiment(config: BaseModel) -> Experiment:
    """The domain's experiment for a validated config, with the run's torch thread count applied
    and ``train.device`` resolved (every command builds through here: train, evaluate and adapt
    alike)."""
    threads = config.train.num_threads  # type: ignore[attr-defined]
    if threads:
        torch.set_num_threads(threads)
    domain = config.domain  # type: ignore[attr-defined]
    if domain not in ("fewshot", "rl"):  # validate() already rejects this
        raise UserError(f"unknown domain {domain!r}")
    device = run_device(config)
    try:
        if domain == "fewshot":
            from metarl.fewshot.experiment import build as build_fewshot

            return build_fewshot(config, device=device)  # type: ignore[arg-type]
        from metarl.rl.experiment import build as build_rl

        return build_rl(config, device=device)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None


@contextmanager
def opened_experiment(config: BaseModel) -> Iterator[Experiment]:
    """:func:`build_experiment`, closed on the way out (sampler worker processes, envs) even when
    the command fails; experiments without resources have no ``close``."""
    experiment = build_experiment(config)
    try:
        yield experiment
    finally:
        close = getattr(experiment, "close", None)
        if close is not None:
            close()


def restore_state(
    experiment: Experiment, state: dict[str, Any], run_dir: Path, path: Path | None = None
) -> None:
    """Load a checkpoint's experiment state onto the experiment's device (wherever it was
    saved or loaded); one that does not fit the config is a :class:`UserError` that names the
    checkpoint (``path``, default the run's last; the run directory is left as it was)."""
    try:
        experiment.load_state_dict(to_device(state["experiment"], experiment_device(experiment)))
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        detail = " ".join(str(e).split())  # torch's load_state_dict message spans lines
        raise UserError(
            f"checkpoint {path or checkpoint_path(run_dir)} does not match the run's config "
            f"({detail}); nothing was changed"
        ) from None


@contextmanager
def restored_experiment(
    run_dir: Path, config: BaseModel | None = None, iteration: int | None = None
) -> Iterator[tuple[Experiment, dict[str, Any]]]:
    """The experiment of ``run_dir``'s last checkpoint (or of the checkpoint kept at
    ``iteration``, ``train.keep_checkpoints_every``), closed on the way out; yields it with the
    checkpoint (``iteration``, ...). ``config`` defaults to the run's saved one. The checkpoint
    is read before the (possibly slow) build, so a missing or corrupt one fails first (read onto
    the CPU; :func:`restore_state` moves it onto the experiment's device)."""
    if config is None:
        config = load_run_config(run_dir)
    path = run_checkpoint(run_dir, iteration)
    state = load_checkpoint(path)
    with opened_experiment(config) as experiment:
        restore_state(experiment, state, run_dir, path)
        yield experiment, state


def curve_table(curve: AdaptationCurve, title: str, config: BaseModel | None = None) -> Table:
    """The curve as a table: one row per point, inner steps, or for an RL² run (``config``'s
    ``algo.method``) the episodes of a trial, whose points are episodes 1..K, not steps."""
    episodes = is_trial_curve(config)
    names = point_names(max(curve.steps) + 1, episodes)
    table = Table(title=title)
    table.add_column("point", justify="right")
    table.add_column(f"{curve.metric} (mean)", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("std. error", justify="right")
    table.add_column("median", justify="right")
    table.add_column(f"gain vs {names[curve.steps[0]]} (paired s.e.)", justify="right")
    for i, (s, m, c, e, med, g) in enumerate(
        zip(curve.steps, curve.mean, curve.ci95, curve.stderr, curve.median, curve.gain_stderr)
    ):
        gain = "" if i == 0 else f"{m - curve.mean[0]:+.4g} ± {g:.3g}"
        table.add_row(names[s], f"{m:.4g}", f"± {c:.3g}", f"{e:.3g}", f"{med:.4g}", gain)
    return table


def _checkpoint(
    run_dir: Path, experiment: Experiment, iteration: int, elapsed: float, keep_every: int
) -> None:
    path = save_checkpoint(
        {"iteration": iteration, "elapsed_s": elapsed, "experiment": experiment.state_dict()},
        checkpoint_path(run_dir),
    )
    if keep_every and iteration % keep_every == 0:
        keep_checkpoint(path, kept_checkpoint_path(run_dir, iteration))


def train(
    config: BaseModel,
    run_dir: Path,
    resume: bool = False,
    console: Console | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) the run in ``run_dir`` and write ``summary.json``; return the summary.

    ``checkpoint``: on resume, the run's checkpoint if the caller has already loaded it (read
    from disk otherwise).

    A new run's directory is created only once the experiment is built, so a config that fails
    late (a missing dataset, say) leaves nothing behind. Training holds the run's lock: a second
    process on the same run is refused. On resume the (possibly extended) config is written back
    under that lock, once the checkpoint has been restored (a checkpoint that does not fit
    changes nothing).
    """
    with ExitStack() as stack:
        if resume:
            stack.enter_context(RunLock(run_dir))
        try:
            return _train(config, run_dir, resume, console or Console(), stack, checkpoint)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" writing {e.filename}" if e.filename else ""
            raise EnvironmentFault(
                f"no space left on the device{where} ({e.strerror}); metrics.jsonl holds every "
                f"complete row and {_how_to_continue(run_dir, 'free space, then ')}"
            ) from None
        except EnvironmentFault as e:  # a sampler worker died or got stuck
            raise EnvironmentFault(f"{e}; {_how_to_continue(run_dir)}") from None


def _how_to_continue(run_dir: Path, first: str = "") -> str:
    """The checkpoint a failed run can continue from, and the command; or that there is none."""
    path = checkpoint_path(run_dir)
    try:
        iteration = load_checkpoint(path)["iteration"]
    except UserError:
        return f"no checkpoint had been written yet: {first}start the run again"
    return (
        f"the checkpoint of iteration {iteration} ({path}) is intact: {first}continue with "
        f"`metarl train --resume {run_dir}`"
    )


def _train(
    config: BaseModel,
    run_dir: Path,
    resume: bool,
    console: Console,
    stack: ExitStack,
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cfg: Any = config
    experiment = stack.enter_context(opened_experiment(config))  # closes sampler workers
    device = experiment_device(experiment)
    if not resume:
        create_run_dir(run_dir, config)
        stack.enter_context(RunLock(run_dir))
        console.print(f"run directory: {run_dir}")
    start, elapsed_before = 0, 0.0
    if resume:
        if checkpoint is None:
            checkpoint = load_checkpoint(checkpoint_path(run_dir), map_location=device)
        state = checkpoint
        restore_state(experiment, state, run_dir)
        (run_dir / CONFIG_NAME).write_text(dump_config(config))  # only once the state fits
        start, elapsed_before = int(state["iteration"]), float(state.get("elapsed_s", 0.0))
        console.print(f"resuming {run_dir} from iteration {start}")
    append_provenance(run_dir, start)
    console.print(describe_device(device), markup=False, highlight=False)
    describe = getattr(experiment, "describe", None)  # optional: e.g. the resolved sampler
    if describe is not None:
        console.print(describe(), markup=False, highlight=False)
    total, keep_every = cfg.train.iterations, cfg.train.keep_checkpoints_every
    log = MetricsLog(run_dir, resume_from=start if resume else None)
    progress = ProgressReporter(total, start, experiment.progress_keys, console)
    t0 = time.perf_counter()
    done = start
    try:
        with stop_after_iteration() as stop:
            for it in range(start, total):
                metrics = experiment.train_iteration(it)
                done = it + 1
                if done % cfg.train.log_every == 0 or done == total:
                    log.log(done, metrics)
                if cfg.train.eval_every and done % cfg.train.eval_every == 0:
                    log.log(done, _eval_row(experiment.evaluate(None, "val"), experiment, "eval"))
                if done % cfg.train.checkpoint_every == 0 or stop.signal_name is not None:
                    elapsed = elapsed_before + time.perf_counter() - t0
                    _checkpoint(run_dir, experiment, done, elapsed, keep_every)
                progress.update(done, metrics)
                if stop.signal_name is not None:
                    raise RunStopped(run_dir, done, stop.signal_name)
    except KeyboardInterrupt:
        # a second signal (or one off the main thread) lands mid-iteration, after the random
        # streams or the optimizer moved: no checkpoint then, the last one is consistent
        progress.close()
        log.close()
        raise
    progress.close()
    train_time = elapsed_before + time.perf_counter() - t0
    if done % cfg.train.checkpoint_every != 0:
        _checkpoint(run_dir, experiment, done, train_time, keep_every)

    t_eval = time.perf_counter()
    curve = experiment.evaluate(cfg.eval.tasks, "test")
    eval_time = time.perf_counter() - t_eval
    log.log(done, _eval_row(curve, experiment, "test"))
    log.close()
    title = f"{cfg.domain}: {Path(run_dir).name}"
    reference = getattr(experiment, "reference_curves", dict)()
    plots = [
        plot_adaptation_curve(
            curve, run_dir / "adaptation_curve.png", title, reference, is_trial_curve(cfg)
        )
    ]
    plots += experiment.save_plots(run_dir, curve)
    summary = {
        "domain": cfg.domain,
        "iterations": done,
        "seed": cfg.seed,
        **device_summary(device),
        "provenance": provenance(),
        "train_time_s": round(train_time, 2),
        "eval_time_s": round(eval_time, 2),
        "eval": curve.as_dict(),
        "plots": [p.name for p in plots],
        **experiment.summary_extra(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(curve_table(curve, f"{run_dir.name}: {curve.num_tasks} held-out tasks", cfg))
    console.print(f"run directory: {run_dir}  (summary.json, metrics.jsonl, tensorboard/, plots)")
    return summary


def _eval_row(curve: AdaptationCurve, experiment: Any, prefix: str) -> dict[str, float]:
    """An evaluation's row of ``metrics.jsonl``: ``eval/...`` for the validation tasks every
    ``train.eval_every`` iterations (a learning curve of one split, its last point included),
    ``test/...`` for the final evaluation on the held-out test tasks (``summary.json``'s). A
    meta-RL run's row also holds the env steps trained so far, so that ``metarl plot --x
    train/env_steps`` places the evaluation."""
    row = {f"{prefix}/{curve.metric}_step{s}": m for s, m in zip(curve.steps, curve.mean)}
    env_steps = getattr(experiment, "env_steps", None)
    if env_steps is not None:
        row["train/env_steps"] = float(env_steps)
    return row


def evaluate_run(
    run_dir: Path,
    config: BaseModel,
    split: str,
    tasks: int | None,
    overrides: Sequence[str] = (),
    iteration: int | None = None,
    task_file: Path | None = None,
) -> AdaptationCurve:
    """Re-evaluate the last checkpoint of a run (or the one kept at ``iteration``); writes
    ``evaluations/<split>-<tasks>tasks.json`` (``...-iteration-N.json`` for a kept one), or,
    when ``config`` differs from the run's by ``overrides`` (``env.kwargs.velocity=com``),
    ``...-<overrides>.json`` with the overrides recorded. With ``task_file``, on the tasks it
    lists (meta-RL runs; ``...-<file name>.json``, the file and its tasks recorded)."""
    task_list = None if task_file is None else read_task_file(task_file)
    with restored_experiment(run_dir, config, iteration) as (experiment, state):
        return evaluate_restored(
            experiment, state, run_dir, split, tasks, overrides, iteration, task_file, task_list
        )


def evaluate_restored(
    experiment: Experiment,
    state: dict[str, Any],
    run_dir: Path,
    split: str,
    tasks: int | None,
    overrides: Sequence[str] = (),
    iteration: int | None = None,
    task_file: Path | None = None,
    task_list: list[dict] | None = None,
) -> AdaptationCurve:
    """:func:`evaluate_run`'s evaluation and record, of an experiment already restored from
    ``state`` (the checkpoint of the run's last iteration, or the one kept at ``iteration``);
    on ``task_list`` (read from ``task_file``) when given."""
    if task_list is None:
        curve = experiment.evaluate(tasks, split)
    else:
        evaluate_on = getattr(experiment, "evaluate_on", None)
        if evaluate_on is None:
            raise UserError(
                "--task-file lists meta-RL tasks; this run's domain draws its own test tasks "
                "(use --tasks N)"
            )
        try:
            curve = evaluate_on(task_list, split)
        except ValueError as e:  # the env names the valid keys and ranges
            raise UserError(f"{task_file}: {e}") from None
    out = evaluation_path(run_dir, split, curve.num_tasks, overrides, iteration, task_file)
    out.parent.mkdir(exist_ok=True)
    device = device_summary(experiment_device(experiment))
    record = {
        "iteration": state["iteration"],
        "split": split,
        **device,
        "provenance": provenance(),
        "eval": curve.as_dict(),
    }
    env_steps = getattr(experiment, "env_steps", None)
    if env_steps is not None:
        record["train/env_steps"] = float(env_steps)
    if overrides:
        record["overrides"] = list(overrides)
    if task_list is not None:
        record["task_file"] = str(task_file)  # its tasks, completed, are the curve's
    out.write_text(json.dumps(record, indent=2))
    return curve
