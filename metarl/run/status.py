"""``metarl status``: where runs stand, from their files alone (no experiment is built, nothing
is locked): trained now or stopped, iterations done of the
budget, the latest training metric, the pace and the time left, and a finished run's result.

The pace is the median of seconds per iteration between the last logged rows (their
``time/wall``; a stop and resume in between counts once and does not skew the median); for rows
written before they carried it, an estimate from the last row's phase timings, marked ``~``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from .checkpoint import load_checkpoint
from .errors import UserError
from .lock import lock_holder
from .metrics import read_metrics
from .points import is_trial_curve, point_names
from .rundir import CONFIG_NAME, checkpoint_path, load_run_config

#: the training metric shown, the first a run logs
LATEST = ("train/return_after", "train/return", "train/accuracy", "train/loss")
RECENT = 20  # logged rows the pace is measured over


@dataclass
class RunStatus:
    run_dir: Path
    state: str  # "training (pid N)", "finished", "stopped", "not started"
    iteration: int  # the last logged iteration
    total: int
    checkpoint: int | None  # the resume point
    latest: tuple[str, float] | None
    seconds_per_iteration: float | None
    paced: bool  # the pace measured between rows (else estimated from one row's timings)
    result: str | None  # the summary's evaluation: its first two points


def find_runs(paths: list[Path]) -> list[Path]:
    """The run directories among ``paths`` and below them (a directory with a config.yaml is a
    run; others are searched), in order; a path with none is a :class:`UserError`."""
    runs: list[Path] = []
    for path in paths:
        if (path / CONFIG_NAME).is_file():
            runs.append(path)
            continue
        found = sorted(p.parent for p in path.rglob(CONFIG_NAME)) if path.is_dir() else []
        if not found:
            raise UserError(f"{path} holds no metarl run (no {CONFIG_NAME} in it or below it)")
        runs += found
    return runs


def run_status(run_dir: Path) -> RunStatus:
    config = load_run_config(run_dir)
    total = int(config.train.iterations)  # type: ignore[attr-defined]
    rows = [r for r in read_metrics(run_dir) if any(map(_training_key, r))]  # not evaluations
    iteration = int(rows[-1]["iteration"]) if rows else 0
    ckpt = checkpoint_path(run_dir)
    checkpoint = int(load_checkpoint(ckpt)["iteration"]) if ckpt.is_file() else None
    holder = lock_holder(run_dir)
    summary = run_dir / "summary.json"
    if holder is not None:
        state = f"training ({holder})"
    elif summary.is_file() and checkpoint == total:
        state = "finished"
    else:
        state = "stopped" if checkpoint is not None else "not started"
    last = rows[-1] if rows else {}
    shown = [k for k in LATEST if k in last] or [k for k in last if _training_key(k)]
    latest = (shown[0], float(last[shown[0]])) if shown else None
    result = None
    if summary.is_file():  # a run extended since shows the summary's iteration
        done = json.loads(summary.read_text())
        ev = done["eval"]
        names = point_names(len(ev["mean"]), is_trial_curve(config))
        points = ", ".join(f"{n} {v:.4g}" for n, v in list(zip(names, ev["mean"]))[:2])
        at = "" if done.get("iterations") == total else f"at {done.get('iterations')}: "
        result = f"{at}{ev['metric']} {points}"
    pace, paced = _pace(rows)
    return RunStatus(run_dir, state, iteration, total, checkpoint, latest, pace, paced, result)


def _training_key(key: str) -> bool:
    """Whether a metrics key is training's: ``train/...`` beyond the env steps, which
    evaluation rows also carry."""
    return key.startswith("train/") and key != "train/env_steps"


def _pace(rows: list[dict]) -> tuple[float | None, bool]:
    """Seconds per iteration and whether they were measured: the median over the recent rows'
    wall times; for rows written before they had one, an estimate from the last row's own
    timings (``time/..._s``: its phases, without logging, evaluations and checkpoints)."""
    timed = [(r["iteration"], r["time/wall"]) for r in rows[-RECENT:] if "time/wall" in r]
    rates = [(t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in zip(timed, timed[1:]) if i1 > i0]
    if rates:
        return statistics.median(rates), True
    phases = [v for k, v in rows[-1].items() if k.startswith("time/") and k.endswith("_s")]
    return (sum(phases) if rows and phases else None), False


def _duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def status_table(statuses: list[RunStatus]) -> Table:
    table = Table(title="runs")
    for name, justify in [
        ("run", "left"),
        ("state", "left"),
        ("iteration", "right"),
        ("checkpoint", "right"),
        ("latest", "left"),
        ("s / it", "right"),
        ("left", "right"),
        ("result", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.columns[0].min_width = max((len(str(s.run_dir)) for s in statuses), default=3)
    for s in statuses:
        pace, about = s.seconds_per_iteration, "" if s.paced else "~"
        left = ""
        if pace is not None and s.state.startswith("training"):
            left = about + _duration(pace * (s.total - s.iteration))
        latest = f"{s.latest[0].removeprefix('train/')} {s.latest[1]:.4g}" if s.latest else ""
        table.add_row(
            str(s.run_dir),
            s.state,
            f"{s.iteration} / {s.total}",
            "" if s.checkpoint is None else str(s.checkpoint),
            latest,
            "" if pace is None else f"{about}{pace:.3g}",
            left,
            s.result or "",
        )
    return table
