"""Returns of the untrained initial policy of several seeds, on given tasks.

Builds each seed's experiment from a config exactly as ``metarl train`` would (same policy
initialisation, same sampler and noise streams) and samples the initial policy, without
training, on each ``--task``. On HalfCheetahDir the forward and backward returns show whether an
initial policy already runs one way: their difference is ``2 * sum_t v_x(t)`` in expectation
(the control costs cancel), so ``(R(+1) - R(-1)) / (2 * 200)`` is the mean velocity in m/s.

    python scripts/investigations/initial_policy.py configs/maml_trpo/half_cheetah_dir.yaml --seeds 0 1 2 3 4 \\
        --task direction=1 --task direction=-1 [--set policy.activation=tanh] [--json]
"""

from __future__ import annotations

import argparse
import json

from metarl.cli import parse_task
from metarl.run.config import load_config
from metarl.run.trainer import opened_experiment


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--task", action="append", required=True, help="KEY=VALUE, repeat for more")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="key=value")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    args = p.parse_args(argv)
    tasks = [parse_task(t) for t in args.task]
    rows = []
    for seed in args.seeds:
        config = load_config(args.config, [*args.overrides, f"seed={seed}"])
        with opened_experiment(config) as experiment:
            returns, _ = experiment.adapt_to_tasks(tasks, 0, args.episodes)
        row = {"seed": seed, "returns": [r[0] for r in returns]}
        rows.append(row)
        print(
            f"seed {seed}: "
            + "  ".join(f"{json.dumps(t)} {r:8.2f}" for t, r in zip(tasks, row["returns"])),
            flush=True,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "config": args.config,
                    "overrides": args.overrides,
                    "tasks": tasks,
                    "episodes": args.episodes,
                    "rows": rows,
                }
            )
        )


if __name__ == "__main__":
    main()
