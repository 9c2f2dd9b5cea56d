"""KL of MAML-TRPO's full step (before the line search) at several ``hvp_subsample`` values, on
one real meta-batch from a run's checkpoint.

TRPO scales its CG step so that the quadratic model of the KL equals ``max_kl``; this measures
the KL that step really has (on every episode) and its length, for each curvature subsample, on
the same sampled data (the sampler is reseeded before each step). The trained policy is loaded
from ``RUN_DIR``'s last checkpoint and restored between steps; nothing is written.

    python scripts/investigations/trpo_step_kl.py runs/hc_dir --subsample 0.2 1.0 [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import metarl.rl.algos.maml_trpo as maml_trpo
from metarl.core import named_params
from metarl.run.rundir import load_run_config
from metarl.run.trainer import restored_experiment


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--subsample", type=float, nargs="+", default=[0.2, 1.0])
    p.add_argument("--seed", type=int, default=123, help="sampler seed for the meta-batch")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = load_run_config(args.run_dir)
    if config.domain != "rl" or config.algo.name != "maml_trpo":
        p.error(f"{args.run_dir} is not a MAML-TRPO run")

    seen: dict = {}
    line_search = maml_trpo.line_search

    def full_step_spy(evaluate, old, full_step, old_loss, *rest, **kw):
        loss, kl = evaluate(old + full_step)
        seen.update(kl=kl, gain=old_loss - loss, step=full_step.clone())
        return line_search(evaluate, old, full_step, old_loss, *rest, **kw)

    maml_trpo.line_search = full_step_spy
    results, steps = {}, {}
    with restored_experiment(args.run_dir, config) as (exp, state):
        algo = exp.algo
        theta = {k: v.detach().clone() for k, v in named_params(algo.policy).items()}
        tasks = exp.task_env.sample_tasks(config.algo.meta_batch_size, np.random.default_rng(7))
        for frac in args.subsample:
            with torch.no_grad():
                for k, v in named_params(algo.policy).items():
                    v.copy_(theta[k])
            algo.sampler.rng = np.random.default_rng(args.seed)
            algo.hvp_subsample = frac
            t0 = time.perf_counter()
            algo.step(tasks)
            steps[frac] = seen["step"]
            results[frac] = {
                "full_step_kl": seen["kl"],
                "max_kl": algo.max_kl,
                "step_norm": float(seen["step"].norm()),
                "surrogate_gain": seen["gain"],
                "seconds": time.perf_counter() - t0,
            }
            print(f"hvp_subsample {frac}: {results[frac]}", flush=True)
    maml_trpo.line_search = line_search
    out = {"run": str(args.run_dir), "iteration": state["iteration"], "results": results}
    if len(steps) > 1:
        a, b = steps[args.subsample[0]], steps[args.subsample[-1]]
        out["cosine_first_last"] = float(a @ b / (a.norm() * b.norm()))
        print(f"cosine of the first and last steps: {out['cosine_first_last']:.3f}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
