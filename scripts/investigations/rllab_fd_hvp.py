"""What the MAML code's TRPO step would be on one real meta-batch: its curvature products are
rllab's ``FiniteDifferenceHvp`` (``ConjugateGradientOptimizer``'s default in cbfinn/maml_rl),
a symmetric float32 finite difference of the KL's gradient with ``eps = 1e-8 / ||theta||``.

For the policy of ``RUN_DIR``'s last checkpoint and one sampled meta-batch, prints:

* how many parameters each of CG's ten products actually perturbs in float32 (``theta +- eps v``
  rounds back to ``theta`` where ``eps |v_i|`` is below half a unit in the last place);
* the TRPO step (length, cosine with the meta-gradient, KL of the full step, surrogate gain,
  line-search outcome) for three directions: the exact natural gradient (metarl's
  ``meta_kl_hvp`` products), the plain meta-gradient scaled to ``max_kl``, and CG on the
  emulated finite-difference products, with rllab's rule that a non-positive curvature gives
  a step size of 1.

Nothing is written. Example:

    python scripts/investigations/rllab_fd_hvp.py runs/hc_dir [--seed 123] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from metarl.core import named_params
from metarl.rl.algos.trpo import (
    conjugate_gradient,
    flatten,
    line_search,
    one_step_kl_hvp,
    unflatten,
)
from metarl.rl.losses import kl_hessian_product, mean_kl, reinforce_loss, surrogate_loss
from metarl.run.rundir import load_run_config
from metarl.run.trainer import restored_experiment

RLLAB_BASE_EPS = 1e-8  # FiniteDifferenceHvp(base_eps=1e-8, symmetric=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--seed", type=int, default=123, help="sampler seed for the meta-batch")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = load_run_config(args.run_dir)
    if config.domain != "rl" or config.algo.name != "maml_trpo" or config.algo.inner.steps != 1:
        p.error(f"{args.run_dir} is not a one-step MAML-TRPO run")
    with restored_experiment(args.run_dir, config) as (exp, state):
        algo, policy = exp.algo, exp.algo.policy
        theta = {k: v.detach().clone() for k, v in named_params(policy).items()}
        tasks = exp.task_env.sample_tasks(config.algo.meta_batch_size, np.random.default_rng(7))
        algo.sampler.rng = np.random.default_rng(args.seed)
        trajs, support, _ = algo.inner.run(algo.sampler, theta, tasks, algo.episodes_per_task, 1)
    query = algo.inner.batch(trajs[-1])

    def adapt(params):
        return algo.inner.replay(params, support)

    with torch.no_grad():
        adapted = adapt(theta)
        old_dist = policy.dist(adapted, query.obs)
        old_logp = policy.log_prob(old_dist, query.actions)
    exact_hvp, jt = one_step_kl_hvp(
        lambda q: reinforce_loss(policy, q, support[0], batched=True).sum(),
        theta,
        len(tasks),
        algo.spec.schedule[0],
        False,
        kl_hessian_product(policy, adapted, query),
        algo.cg_damping,
    )
    grad_adapted = torch.func.grad(lambda q: surrogate_loss(policy, q, query, old_logp))(adapted)
    g = flatten(jt(grad_adapted).values())
    th = flatten(theta.values())

    def kl_grad(flat):
        params = {k: v.requires_grad_() for k, v in unflatten(flat.clone(), theta).items()}
        kl = mean_kl(policy, old_dist, adapt(params), query)
        return flatten(torch.autograd.grad(kl, list(params.values())))

    eps = torch.tensor(RLLAB_BASE_EPS / (float(th.norm()) + 1e-8), dtype=torch.float32)
    perturbed: list[int] = []

    def fd_hvp(v):
        plus, minus = th + eps * v, th - eps * v
        perturbed.append(int(((plus != th) | (minus != th)).sum()))
        return (kl_grad(plus) - kl_grad(minus)) / (2 * eps) + algo.cg_damping * v

    def evaluate(candidate):
        with torch.no_grad():
            new = adapt(unflatten(candidate, theta))
            return (
                float(surrogate_loss(policy, new, query, old_logp)),
                float(mean_kl(policy, old_dist, new, query)),
            )

    old_loss, _ = evaluate(th)

    def trpo_step(direction, hvp):  # rllab's ConjugateGradientOptimizer.optimize
        shs = float(direction @ hvp(direction))
        size = math.sqrt(2 * algo.max_kl / (shs + 1e-8)) if shs + 1e-8 > 0 else 1.0
        step = -size * direction
        loss, kl = evaluate(th + step)
        ls = line_search(
            evaluate, th, step, old_loss, algo.max_kl, algo.ls_max_steps, algo.ls_backtrack
        )
        return {
            "curvature": shs,
            "step_norm": float(step.norm()),
            "cosine_with_gradient": float(-step @ g / (step.norm() * g.norm())),
            "full_step_kl": kl,
            "full_step_gain": old_loss - loss,
            "accepted": ls.accepted,
            "line_search_steps": ls.steps,
            "accepted_kl": ls.kl,
            "accepted_gain": old_loss - ls.loss,
        }

    results = {
        "natural (exact products)": trpo_step(
            conjugate_gradient(exact_hvp, g, algo.cg_iters), exact_hvp
        ),
        "gradient": trpo_step(g, exact_hvp),
    }
    fd_direction = conjugate_gradient(fd_hvp, g, algo.cg_iters)
    cg_perturbed = list(perturbed)
    results["rllab finite differences"] = trpo_step(fd_direction, fd_hvp)
    out = {
        "run": str(args.run_dir),
        "iteration": state["iteration"],
        "parameters": int(th.numel()),
        "theta_norm": float(th.norm()),
        "eps": float(eps),
        "max_kl": algo.max_kl,
        "cg_products_perturbing": cg_perturbed,
        "steps": results,
    }
    print(
        f"{out['parameters']} parameters, eps {out['eps']:.3g}; parameters each CG product "
        f"perturbs in float32: {cg_perturbed}"
    )
    for name, r in results.items():
        print(
            f"{name:26s} "
            + " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items())
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
