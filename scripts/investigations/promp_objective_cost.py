"""What one ProMP outer objective costs, by part, on a small Ant batch (10 tasks x 10 episodes of
``configs/promp/ant_dir_maml_task.yaml``, one torch thread): the objective with its backward (one
of ``num_ppo_steps`` Adam steps), the objective alone, the LVC inner step replayed (with and
without a backward through it), the KL penalty's forward and backward, and the after-update
objective ``ProMP.optimize`` computes for its diagnostics (no graph). Medians of 3.

    python scripts/investigations/promp_objective_cost.py
"""

from __future__ import annotations

import statistics
import time

import torch

from metarl.core import detach_params, named_params
from metarl.rl import RLConfig
from metarl.rl.experiment import build
from metarl.rl.losses import mean_kl
from metarl.run.config import apply_overrides, read_config_file


def main() -> None:
    torch.set_num_threads(1)
    data = read_config_file("configs/promp/ant_dir_maml_task.yaml")
    data = apply_overrides(data, ["algo.meta_batch_size=10", "algo.episodes_per_task=10"])
    experiment = build(RLConfig.model_validate(data))
    algo = experiment.algo
    batch = algo.sample(experiment.task_env.sample_tasks(10, experiment.task_rng))
    theta = named_params(algo.policy)

    def objective_backward():
        algo.objective(theta, batch).loss.backward()

    def replay_backward():
        adapted = algo.inner.replay_path(theta, batch.support)[-1]
        sum(v.sum() for v in adapted.values()).backward()

    def after_update():
        with torch.no_grad():
            algo.objective(detach_params(theta), batch)

    parts = {
        "objective + backward": objective_backward,
        "objective": lambda: algo.objective(theta, batch),
        "inner step replayed": lambda: algo.inner.replay_path(theta, batch.support),
        "inner step replayed + backward": replay_backward,
        "KL penalty + backward": lambda: mean_kl(
            algo.policy, batch.support_dists[0], theta, batch.support[0]
        ).backward(),
        "after-update objective (no graph)": after_update,
    }
    steps = sum(t.env_steps for t in batch.trajs)
    print(f"{steps} env steps (pre- and post-update episodes)")
    for name, part in parts.items():
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            part()
            times.append(time.perf_counter() - t0)
        print(f"{name:36s} {statistics.median(times):.3f} s")
    experiment.close()


if __name__ == "__main__":
    main()
