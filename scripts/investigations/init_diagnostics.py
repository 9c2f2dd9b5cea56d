"""The per-iteration diagnostics (metarl/rl/diagnostics.py) of the *initial* policy, per seed.

For each seed and each variant (``--set`` overrides, e.g. ``policy.activation=tanh``), builds the
experiment of CONFIG exactly as ``metarl train`` would, samples one meta-batch of pre-update
episodes with the initial weights and prints the ``diag/`` values, so that they can be set beside
each seed's final 1-step return (which of them, if any, predicts a seed's fate?).

    python scripts/investigations/init_diagnostics.py configs/maml_trpo/half_cheetah_dir.yaml \\
        --seeds 0 1 2 3 4 5 6 --variant "" --variant policy.activation=tanh
"""

from __future__ import annotations

import argparse
import json

from metarl.core import named_params
from metarl.rl.diagnostics import policy_diagnostics
from metarl.rl.experiment import build
from metarl.run.config import load_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(7)))
    p.add_argument(
        "--variant", action="append", default=None, help="comma-separated --set overrides"
    )
    args = p.parse_args()
    rows = []
    for variant in args.variant or [""]:
        overrides = [o for o in variant.split(",") if o]
        for seed in args.seeds:
            cfg = load_config(args.config, [*overrides, f"seed={seed}"])
            exp = build(cfg)
            try:
                tasks = exp.task_env.sample_tasks(cfg.algo.meta_batch_size, exp.task_rng)
                theta = {k: v.detach() for k, v in named_params(exp.policy).items()}
                traj = exp.sampler.sample(theta, tasks, cfg.algo.episodes_per_task)
                diag = policy_diagnostics(
                    exp.policy, theta, traj, exp.env.action_space, exp.sampler.action_map
                )
            finally:
                exp.close()
            row = {
                "variant": variant or "config",
                "seed": seed,
                "return": traj.mean_return(),
            }
            row.update({k: round(v, 4) for k, v in diag.items()})
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
