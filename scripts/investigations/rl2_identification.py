"""How soon does an RL² policy find the task? Its reward step by step through a trial.

RL²'s evaluation reports one return per trial episode; the MAML paper's question for it, "does
the second episode beat the first?", cannot see a task found within the first episode. This
script replays the run's final evaluation (the same held-out tasks, trials and seed as
``summary.json``'s) and splits each trial episode's return into blocks of steps: the mean reward
per step in each block, episode 1 against episode 2, with the paired standard error over tasks.
Episode 2 starts knowing the task (it has seen a whole episode), so where episode 1's block
reward reaches episode 2's, the policy has found the task; before that, the gap is the price of
not knowing it yet. Also printed: the blocks' sums, which add up to the evaluation's returns
(a check that the replay is the evaluation).

    python scripts/investigations/rl2_identification.py RUN_DIR [--block 10]

RUN_DIR is an RL² run (``metarl baselines ... --methods rl2`` writes ``RUN/rl2``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from metarl.run.trainer import restored_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--block", type=int, default=10, help="steps per block")
    args = parser.parse_args()
    with restored_experiment(args.run_dir) as (experiment, state):
        if getattr(experiment, "baseline", None) is None or experiment.baseline.method != "rl2":
            raise SystemExit(f"{args.run_dir} is not an RL² run")
        tasks, seed = experiment.eval_tasks(None, "test")
        rewards = experiment.step_rewards(tasks, seed)  # [copies, episodes, steps]
    episodes = rewards.shape[0] // len(tasks)
    per_task = rewards.reshape(len(tasks), episodes, *rewards.shape[1:]).mean(1)  # [tasks, K, T]
    steps = per_task.shape[2]
    print(
        f"{args.run_dir}: iteration {state['iteration']}, {len(tasks)} held-out tasks x "
        f"{episodes} trials, {per_task.shape[1]} episodes of up to {steps} steps\n"
    )
    returns = per_task.sum(2).mean(0)
    summary = args.run_dir / "summary.json"
    if summary.is_file():
        reported = json.loads(summary.read_text())["eval"]["mean"]
        print(f"returns per trial episode: {np.round(returns, 2)} (summary.json: {reported})\n")
    print("steps     | ep. 1 reward/step | ep. 2 reward/step | ep. 1 - ep. 2 (paired s.e.)")
    print("---|---|---|---")
    for start in range(0, steps, args.block):
        block = per_task[:, :, start : start + args.block].mean(2)  # [tasks, K]
        diff = block[:, 0] - block[:, 1]
        se = diff.std(ddof=1) / np.sqrt(len(diff))
        end = min(start + args.block, steps)
        print(
            f"{start + 1}-{end} | {block[:, 0].mean():.3f} | {block[:, 1].mean():.3f} | "
            f"{diff.mean():+.3f} ± {se:.3f}"
        )


if __name__ == "__main__":
    main()
