"""MAML-TRPO's step against a reference written straight from its definition.

The reference differentiates plain autograd functions of theta built with torch.distributions
(inner REINFORCE steps, the importance-weighted surrogate, the KL to the pre-step adapted
policies): the gradient by one backward pass, the KL's Hessian by double backward, then textbook
conjugate gradient and backtracking. None of metarl's losses, fast paths, Fisher products or
reused graphs take part, so the speed work inside the algorithm must leave the step equal to
this to float32 precision.
"""

import numpy as np
import pytest
import torch
from rl_testing import small_config

from metarl.rl import build

#: conjugate-gradient iterations of the compared steps: CG on the KL's ill-conditioned Hessian
#: amplifies float32 rounding in its later iterations (at 10, two exact orders of the same
#: products end 0.1-1% apart), so three keep the comparison about the products themselves
CG_ITERS = 3


def _normal(policy, params, obs):
    mean, log_std = torch.func.functional_call(policy, params, (obs,))
    return torch.distributions.Normal(mean, log_std.exp())


def _masked(x, mask):
    return (x * mask).sum() / mask.sum()


def _reference_step(policy, theta, batch, lr, first_order, algo):
    names = list(theta)
    tasks = batch.query.obs.shape[0]

    def adapt(th):
        out = []
        for i in range(tasks):  # leaves where th carries no graph (the inner step needs one)
            p = {n: v if v.requires_grad else v.detach().requires_grad_() for n, v in th.items()}
            for data in batch.support:
                logp = _normal(policy, p, data.obs[i]).log_prob(data.actions[i]).sum(-1)
                loss = -_masked(logp * data.advantages[i], data.mask[i])
                grads = torch.autograd.grad(loss, [p[n] for n in names], create_graph=True)
                p = {
                    n: p[n] - lr * (g.detach() if first_order else g) for n, g in zip(names, grads)
                }
            out.append(p)
        return out

    q = batch.query
    old = []
    for i, p in enumerate(adapt(theta)):
        old.append(_normal(policy, {n: v.detach() for n, v in p.items()}, q.obs[i]))
    old_logp = [d.log_prob(q.actions[i]).sum(-1) for i, d in enumerate(old)]

    def surrogate_and_kl(th):
        loss, kl = 0.0, 0.0
        for i, p in enumerate(adapt(th)):
            new = _normal(policy, p, q.obs[i])
            ratio = (new.log_prob(q.actions[i]).sum(-1) - old_logp[i]).exp()
            loss = loss - _masked(ratio * q.advantages[i], q.mask[i]) / tasks
            kl_i = torch.distributions.kl_divergence(old[i], new).sum(-1)
            kl = kl + _masked(kl_i, q.mask[i]) / tasks
        return loss, kl

    leaves = {n: v.detach().clone().requires_grad_() for n, v in theta.items()}
    loss0, kl0 = surrogate_and_kl(leaves)
    g = torch.cat(
        [
            x.reshape(-1)
            for x in torch.autograd.grad(loss0, list(leaves.values()), retain_graph=True)
        ]
    )
    grad_kl = torch.autograd.grad(kl0, list(leaves.values()), create_graph=True)
    grad_kl = torch.cat([x.reshape(-1) for x in grad_kl])

    def hvp(v):
        h = torch.autograd.grad(grad_kl @ v, list(leaves.values()), retain_graph=True)
        return torch.cat([x.reshape(-1) for x in h]) + algo.cg_damping * v

    x, r, p = torch.zeros_like(g), g.clone(), g.clone()  # conjugate gradient, H x = g
    for _ in range(algo.cg_iters):
        hp = hvp(p)
        alpha = (r @ r) / (p @ hp)
        x, r_new = x + alpha * p, r - alpha * hp
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
    step = -torch.sqrt(2 * algo.max_kl / (x @ hvp(x))) * x
    flat0 = torch.cat([v.detach().reshape(-1) for v in theta.values()])
    for k in range(algo.ls_max_steps):
        cand = flat0 + algo.ls_backtrack**k * step
        params, i = {}, 0
        for n, v in theta.items():
            params[n] = cand[i : i + v.numel()].view_as(v)
            i += v.numel()
        loss, kl = surrogate_and_kl(params)
        if loss < loss0 and kl <= algo.max_kl:
            return params, k + 1
    raise AssertionError("the reference line search accepted no step")


@pytest.mark.parametrize("inner", [{}, {"first_order": True}, {"steps": 2}])
def test_maml_trpo_step_equals_the_reference_step(inner):
    exp = build(small_config("maml_trpo", inner={"lr": 0.1, **inner}, cg_iters=CG_ITERS))
    algo = exp.algo
    tasks = exp.task_env.sample_tasks(6, np.random.default_rng(1))
    theta = {k: v.clone() for k, v in algo.meta_params().items()}
    batch = algo.sample(theta, tasks)
    algo.sample = lambda meta, tasks: batch  # the step sees exactly these episodes
    expected, ls_steps = _reference_step(
        exp.policy, theta, batch, 0.1, inner.get("first_order", False), algo
    )
    metrics = algo.step(tasks)
    assert metrics["ls_steps"] == ls_steps
    got = algo.meta_params()
    for name, value in expected.items():
        assert not torch.equal(got[name], theta[name])  # the step moved every tensor
        torch.testing.assert_close(got[name], value.detach(), rtol=1e-4, atol=1e-6)


def test_one_step_fast_path_equals_the_general_path_with_subsampled_curvature():
    """With ``hvp_subsample < 1`` the one-step fast path (symmetric Jacobian, support graph
    reused) and the general path (jvp / vjp through the inner step) take the same step."""
    steps = {}
    for fast in (True, False):
        exp = build(small_config("maml_trpo", hvp_subsample=0.5, cg_iters=CG_ITERS))
        algo = exp.algo
        if not fast:
            algo._fast_path = lambda: False
        tasks = exp.task_env.sample_tasks(6, np.random.default_rng(1))
        theta = {k: v.clone() for k, v in algo.meta_params().items()}
        batch = algo.sample(theta, tasks)
        algo.sample = lambda meta, tasks, batch=batch: batch
        algo.step(tasks)
        steps[fast] = {k: v - theta[k] for k, v in algo.meta_params().items()}
    for name, step in steps[True].items():
        assert step.abs().max() > 0
        torch.testing.assert_close(step, steps[False][name], rtol=1e-4, atol=1e-7)
