"""Env steps per second of each Stable-Baselines3 baseline of a ``metarl baselines`` config.

Builds every baseline the config names (``metarl.run.baselines.method_config``), runs
``--iterations`` training iterations of ``--steps`` env steps each (default: one of the config's
iterations), and prints the median rate. Training only: no evaluation, nothing written.

    python scripts/bench_baselines.py configs/baselines/navigation2d.yaml --steps 40000
    python scripts/bench_baselines.py configs/baselines/navigation2d.yaml --methods pretrained --json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from metarl.rl.experiment import build
from metarl.run.baselines import METHODS, load_baselines_config, method_config
from metarl.run.config import load_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, help="env steps per timed iteration (whole rollouts)")
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg, meta_path = load_baselines_config(args.config)
    meta = load_config(meta_path)
    out = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread"}
    for method in args.methods.split(","):
        budget = getattr(cfg, method)
        if budget is None:
            continue
        if args.steps:
            budget = budget.model_copy(update={"env_steps_per_iteration": args.steps})
        experiment = build(method_config(meta, method, budget))
        rates = []
        for i in range(args.iterations):
            t0 = time.perf_counter()
            experiment.train_iteration(i)
            rates.append(budget.env_steps_per_iteration / (time.perf_counter() - t0))
        experiment.close()
        out[method] = round(statistics.median(rates))
        print(f"{method}: {out[method]:,} env steps/s (median of {len(rates)})", flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
