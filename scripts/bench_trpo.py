"""Time MAML-TRPO's outer step (the Hessian-vector products, CG and line search) without an env.

A HalfCheetahVel-shaped meta-batch (40 tasks x 20 episodes x 200 steps, 17-d observations,
6-d actions, (100, 100) ReLU Gaussian policy, one inner step) of random data, so that only the
optimisation is timed. Two comparisons, timed round-robin after a warm-up round so that load
changes hit all variants alike; medians reported:

* one KL Hessian-vector product on the query batch: double backward through the KL's gradient
  (:func:`metarl.rl.algos.trpo.hessian_vector_product`, the textbook form) vs the Fisher form
  (:func:`metarl.rl.losses.kl_hessian_product`, one jvp and one reused vjp);
* a whole :class:`metarl.rl.algos.maml_trpo.MAMLTRPO` step at each ``--subsample`` value
  (``hvp_subsample``: 1.0 is exact).

    python scripts/bench_trpo.py [--tasks 40] [--repeats 3] [--threads 1] [--subsample 1.0 0.2]
                                 [--json]

With ``--json`` the last line is one JSON object with every median.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from metarl.core import InnerSpec, detach_params, named_params
from metarl.rl.algos.maml_trpo import MAMLTRPO
from metarl.rl.algos.trpo import hessian_vector_product
from metarl.rl.inner_loop import InnerLoop
from metarl.rl.losses import kl_hessian_product, mean_kl
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.trajectories import Trajectories

OBS, ACT = 17, 6


class RandomSampler:
    """Stands in for the env: random trajectories of the right shapes, seeded."""

    def __init__(self, horizon: int, seed: int = 0) -> None:
        self.horizon = horizon
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, params, tasks, episodes, rng=None) -> Trajectories:
        shape = (len(tasks), episodes, self.horizon)
        obs = torch.randn(*shape, OBS, generator=self.gen)
        actions = torch.randn(*shape, ACT, generator=self.gen)
        rewards = torch.randn(*shape, generator=self.gen) + obs[..., 0]
        mask = torch.ones(shape)
        return Trajectories(obs, actions, rewards, mask, rewards.sum(-1), mask.sum(-1).long())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--subsample",
        type=float,
        nargs="*",
        default=[1.0, 0.2],
        help="hvp_subsample values of the timed MAML-TRPO steps (none: time the products only)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = GaussianMLPPolicy(OBS, ACT, (100, 100), generator=torch.Generator().manual_seed(0))
    inner = InnerLoop(policy, InnerSpec(0.1), task_batching="vmap")
    sampler = RandomSampler(args.horizon)
    tasks = [{}] * args.tasks

    # one KL product on a query batch, stacked per-task parameters
    theta = detach_params(named_params(policy))
    adapted = {k: v.unsqueeze(0).repeat(args.tasks, *[1] * v.dim()) for k, v in theta.items()}
    query = inner.batch(sampler.sample(adapted, tasks, args.episodes))
    with torch.no_grad():
        old = policy.dist(adapted, query.obs)
    leaves = {k: v.clone().requires_grad_() for k, v in adapted.items()}
    double_backward = hessian_vector_product(
        mean_kl(policy, old, leaves, query), list(leaves.values())
    )
    fisher = kl_hessian_product(policy, adapted, query)
    w = {
        k: torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
        for k, v in adapted.items()
    }
    flat_w = torch.cat([t.reshape(-1) for t in w.values()])

    algos = {
        f"maml_trpo_step_subsample_{s}": MAMLTRPO(
            inner, sampler, episodes_per_task=args.episodes, hvp_subsample=s
        )
        for s in args.subsample
    }
    cases = {
        "kl_hvp_double_backward": lambda: double_backward(flat_w),
        "kl_hvp_fisher": lambda: fisher(w),
    }
    for name, algo in algos.items():
        cases[name] = lambda algo=algo: algo.step(tasks)

    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(args.repeats + 1):  # round 0 warms up
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"{name:40s} {seconds:8.3f} s")
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "tasks": args.tasks,
        "episodes": args.episodes,
        "horizon": args.horizon,
        "medians_s": medians,
        "fisher_speedup": medians["kl_hvp_double_backward"] / medians["kl_hvp_fisher"],
    }
    if len(args.subsample) > 1:
        first, last = (
            f"maml_trpo_step_subsample_{s}" for s in (args.subsample[0], args.subsample[-1])
        )
        result["subsample_speedup"] = medians[first] / medians[last]
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
