"""Why do Ant episodes end early? Episode lengths and termination causes, per physics setting.

Runs whole episodes of an Ant task env, one at a time, with either a random policy (actions
~ N(0, 1) clipped to [-1, 1], what an untrained policy with log-std 0 does) or the pre-update
policy of a run's last checkpoint, and counts how each episode ended: the torso above
``healthy_z_range``'s top (a jump), below its bottom (a fall), or at the horizon. Each
``--physics TIMESTEP:FRAME_SKIP`` setting is one row (the env's own timing is 0.02:1, the MAML
code's; 0.01:2 acts for the same 0.02 s per action with two 0.01 s integration steps).

    python scripts/investigations/ant_terminations.py --physics 0.02:1 --physics 0.01:2 --physics 0.01:5
    python scripts/investigations/ant_terminations.py --run runs/ant_vel/s0 --physics 0.02:1 --physics 0.01:2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs  # noqa: F401  (registers metarl/*)


def episodes(env_id: str, kwargs: dict, policy, n_tasks: int, n_episodes: int, seed: int) -> dict:
    env = gymnasium.make(env_id, **kwargs).unwrapped
    rng = np.random.default_rng(seed)
    lo, hi = env._healthy_z_range
    ends = {"jump (z > top)": 0, "fall (z < bottom)": 0, "horizon": 0, "other": 0}
    lengths, returns, z_peaks, per_task = [], [], [], []
    for task in env.sample_tasks(n_tasks, rng=rng):
        env.set_task(task)
        first = len(lengths)
        for _ in range(n_episodes):
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            total, peak, length = 0.0, -np.inf, 0
            for _ in range(env.horizon):
                length += 1
                if policy is None:
                    action = rng.standard_normal(env.action_space.shape)
                else:
                    with torch.no_grad():
                        dist = policy(torch.as_tensor(obs, dtype=torch.float32)[None])
                        action = policy.sample_actions(dist, rng)[0]
                obs, reward, terminated, _, _ = env.step(np.clip(action, -1.0, 1.0))
                total += reward
                z = float(env.data.qpos[2])
                peak = max(peak, z)
                if terminated:
                    key = "jump (z > top)" if z > hi else "fall (z < bottom)" if z < lo else "other"
                    ends[key] += 1
                    break
            else:
                ends["horizon"] += 1
            lengths.append(length)
            returns.append(total)
            z_peaks.append(peak)
        per_task.append(
            {
                "task": task,
                "mean_length": float(np.mean(lengths[first:])),
                "mean_return": float(np.mean(returns[first:])),
            }
        )
    return {
        "physics": kwargs,
        "episodes": len(lengths),
        "mean_length": float(np.mean(lengths)),
        "ends": ends,
        "mean_return": float(np.mean(returns)),
        "median_peak_z": float(np.median(z_peaks)),
        "per_task": per_task,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="metarl/AntVel-v0")
    p.add_argument("--run", type=Path, help="use this run's pre-update policy (default: random)")
    p.add_argument("--physics", action="append", default=None, help="TIMESTEP:FRAME_SKIP")
    p.add_argument("--tasks", type=int, default=10)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-task", action="store_true", help="also each task's length and return")
    args = p.parse_args()
    policy = None
    if args.run is not None:
        from metarl.run.trainer import restored_experiment

        with restored_experiment(args.run) as (experiment, state):
            policy = experiment.policy
            print(f"policy of {args.run} at iteration {state['iteration']}")
    for setting in args.physics or ["0.02:1"]:
        timestep, frame_skip = setting.split(":")
        kwargs = {"timestep": float(timestep), "frame_skip": int(frame_skip)}
        row = episodes(args.env, kwargs, policy, args.tasks, args.episodes, args.seed)
        per_task = row.pop("per_task")
        print(json.dumps(row))
        if args.per_task:
            for t in sorted(per_task, key=lambda t: json.dumps(t["task"])):
                print("   ", json.dumps(t))


if __name__ == "__main__":
    main()
