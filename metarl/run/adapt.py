"""``metarl adapt``: adapt a trained meta-RL policy to task variants it may never have seen."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from .checkpoint import save_checkpoint
from .errors import UserError
from .rundir import load_run_config
from .trainer import restored_experiment


def adapt_run(
    run_dir: Path,
    tasks: list[dict],
    steps: int,
    episodes: int,
    video: Path | None,
    console: Console,
    video_before: bool = False,
    config: BaseModel | None = None,
    iteration: int | None = None,
) -> Path:
    """Print returns after 0..``steps`` inner steps per task; save the adapted parameters.
    ``config``: the run's saved one (the default) or it with changes (``--device``);
    ``iteration``: a kept checkpoint's policy instead of the last one's."""
    config = load_run_config(run_dir) if config is None else config
    if config.domain != "rl":  # type: ignore[attr-defined]
        raise UserError(
            f"{run_dir} is a {config.domain} run; `metarl adapt` adapts meta-RL policies"
        )  # type: ignore[attr-defined]
    with restored_experiment(run_dir, config, iteration) as (experiment, state):
        try:
            rows, adapted = experiment.adapt_to_tasks(tasks, steps, episodes)  # type: ignore[attr-defined]
        except ValueError as e:
            raise UserError(str(e)) from None
        table = Table(title=f"returns after adaptation ({episodes} episodes per step)")
        table.add_column("task")
        for s in range(steps + 1):
            table.add_column(f"{s} step{'' if s == 1 else 's'}", justify="right")
        for task, row in zip(tasks, rows):
            table.add_row(json.dumps(task), *(f"{r:.2f}" for r in row))
        console.print(table)
        out = run_dir / "adapted" / f"adapted-{time.strftime('%Y%m%d-%H%M%S')}.pt"
        save_checkpoint(
            {
                "iteration": state["iteration"],
                "experiment": {},
                "tasks": [json.dumps(t) for t in tasks],
                "steps": steps,
                "returns": [[float(r) for r in row] for row in rows],
                "params": [{k: v.detach().clone() for k, v in p.items()} for p in adapted],
            },
            out,
        )
        console.print(f"adapted parameters: {out}")
        if video is not None:
            params, labels = [adapted[0]], [f"after {steps} step{'' if steps == 1 else 's'}"]
            if video_before:
                params.insert(0, experiment.policy_params())  # type: ignore[attr-defined]
                labels.insert(0, "before adaptation")
            try:
                experiment.record_video(params, labels, tasks[0], video)  # type: ignore[attr-defined]
            except ImportError as e:
                raise UserError(
                    f"--video needs the video extra: pip install 'metarl[video]' ({e})"
                ) from None
            what = (
                "the policy before and after adaptation" if video_before else "the adapted policy"
            )
            console.print(f"video of {what} on {json.dumps(tasks[0])}: {video}")
    return out
