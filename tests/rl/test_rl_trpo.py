import math

import pytest
import torch

from metarl.core import InnerSpec, named_params
from metarl.rl.algos.trpo import (
    conjugate_gradient,
    conjugate_gradient_with_product,
    flatten,
    hessian_vector_product,
    line_search,
    meta_kl_hvp,
    one_step_kl_hvp,
    trpo_step_direction,
    unflatten,
)
from metarl.rl.inner_loop import InnerLoop
from metarl.rl.losses import kl_hessian_product, mean_kl, reinforce_loss
from metarl.rl.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from metarl.rl.trajectories import PGBatch


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(30, 30, generator=g, dtype=torch.float64)
    spd = a @ a.T + 30 * torch.eye(30, dtype=torch.float64)
    b = torch.randn(30, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: spd @ v, b, iters=30, tol=1e-30)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), atol=1e-8, rtol=1e-8)
    # the accumulated product equals A x at any iteration count (TRPO's s^T H s without a matvec)
    x, ax = conjugate_gradient_with_product(lambda v: spd @ v, b, iters=4)
    torch.testing.assert_close(ax, spd @ x, atol=1e-10, rtol=1e-10)


def test_trpo_step_is_the_natural_gradient_scaled_to_the_trust_region():
    """With exact CG the step is -sqrt(2 max_kl / g^T H^-1 g) H^-1 g, written out here with a
    dense solve: its quadratic KL 1/2 s^T H s equals max_kl and it descends along -g."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)
    h = a @ a.T + 0.5 * torch.eye(12, dtype=torch.float64)
    grad = torch.randn(12, generator=g, dtype=torch.float64)
    step = trpo_step_direction(grad, lambda v: h @ v, max_kl=0.02, cg_iters=12)
    natural = torch.linalg.solve(h, grad)
    expected = -math.sqrt(2 * 0.02 / float(grad @ natural)) * natural
    torch.testing.assert_close(step, expected, atol=1e-8, rtol=1e-6)
    assert 0.5 * float(step @ h @ step) == pytest.approx(0.02, rel=1e-6)
    assert float(step @ grad) < 0
    # no step where the curvature is not positive
    assert trpo_step_direction(grad, lambda v: -v, 0.02, 5) is None


def test_kl_hessian_product_equals_double_backward_of_the_kl():
    """The Fisher form J^T M J equals the KL's exact Hessian at the old policy, for both
    policies, stacked parameters and a partial mask."""
    gen = torch.Generator().manual_seed(5)
    tasks, eps, horizon = 3, 2, 4
    obs = torch.randn(tasks, eps, horizon, 3, generator=gen, dtype=torch.float64)
    mask = torch.ones(tasks, eps, horizon, dtype=torch.float64)
    mask[1, 0, 2:] = 0
    data = PGBatch(obs, None, None, mask)  # the KL reads observations and mask only
    for policy in (
        GaussianMLPPolicy(3, 2, (8,), "tanh", -0.3, gen).double(),
        CategoricalMLPPolicy(3, 4, (8,), "relu", gen).double(),
    ):
        params = {
            k: (v.detach() + 0.1 * torch.randn(tasks, *v.shape, generator=gen, dtype=v.dtype))
            for k, v in named_params(policy).items()
        }
        with torch.no_grad():
            old = policy.dist(params, obs)
        leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
        kl = mean_kl(policy, old, leaves, data)
        exact = hessian_vector_product(kl, list(leaves.values()))
        w = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
        got = kl_hessian_product(policy, params, data)(w)
        torch.testing.assert_close(
            flatten([got[k] for k in params]),
            exact(flatten(w.values())),
            atol=1e-10,
            rtol=1e-8,
        )


def test_hessian_vector_product_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(6, dtype=torch.float64, generator=g)

    def f(x):
        return (x.sin() * x.roll(1)).sum() + (x**4).sum()

    hvp = hessian_vector_product(f(w), [w])
    eps = 1e-6
    gp = torch.autograd.grad(f(w + eps * v), w)[0]
    gm = torch.autograd.grad(f(w - eps * v), w)[0]
    torch.testing.assert_close(hvp(v), (gp - gm) / (2 * eps), atol=1e-6, rtol=1e-6)


def test_line_search_rejects_nan_and_kl_violations():
    old = torch.zeros(3)
    step = torch.ones(3)
    calls = []

    def evaluate(candidate):
        calls.append(candidate.clone())
        if len(calls) == 1:
            return math.nan, 0.0  # NaN loss rejected
        if len(calls) == 2:
            return -1.0, math.inf  # inf KL rejected
        if len(calls) == 3:
            return -1.0, 0.5  # KL above max_kl rejected
        return -1.0, 0.001

    result = line_search(
        evaluate, old, step, old_loss=0.0, max_kl=0.01, max_steps=15, backtrack=0.5
    )
    assert result.accepted and result.steps == 4
    torch.testing.assert_close(result.params, 0.125 * step)

    def always_nan(candidate):
        return math.nan, math.nan

    result = line_search(always_nan, old, step, 0.0, 0.01, max_steps=5)
    assert not result.accepted and result.steps == 5
    torch.testing.assert_close(result.params, old)


def _meta_kl_problem(first_order: bool, steps: int):
    """A float64 meta-batch: theta, support batches, query batch, adapt(theta), KL(theta)."""
    gen = torch.Generator().manual_seed(2)
    policy = GaussianMLPPolicy(2, 2, (8,), "tanh", 0.0, gen).double()
    inner = InnerLoop(
        policy, InnerSpec(0.3, steps=steps, first_order=first_order), task_batching="loop"
    )
    tasks, eps, horizon = 3, 2, 5

    def batch():
        obs = torch.randn(tasks, eps, horizon, 2, generator=gen, dtype=torch.float64)
        act = torch.randn(tasks, eps, horizon, 2, generator=gen, dtype=torch.float64)
        adv = torch.randn(tasks, eps, horizon, generator=gen, dtype=torch.float64)
        mask = torch.ones(tasks, eps, horizon, dtype=torch.float64)
        mask[0, 1, 3:] = 0
        return PGBatch(obs, act, adv, mask)

    support = [batch() for _ in range(steps)]
    query = batch()
    theta = {k: v.detach() for k, v in named_params(policy).items()}

    def adapt(p):
        return inner.replay(p, support)

    with torch.no_grad():
        adapted = adapt(theta)
        old_dist = policy.dist(adapted, query.obs)

    def kl(p):
        return mean_kl(policy, old_dist, p, query)

    def kl_of_theta(p):
        return kl(adapt(p))

    kl_hvp = kl_hessian_product(policy, adapted, query)
    return policy, inner, theta, support, adapt, adapted, kl_hvp, kl_of_theta


def _reference_hvp(kl_of_theta, theta, v, first_order, eps=1e-5):
    """Finite differences of the gradient (second order); for first order, where the inner
    gradient is detached so no function has this Hessian, double-backward autograd."""
    if first_order:
        params = {k: t.clone().requires_grad_() for k, t in theta.items()}
        return hessian_vector_product(kl_of_theta(params), list(params.values()))(v)
    return _fd_hvp(kl_of_theta, theta, v, eps)


def _fd_hvp(kl_of_theta, theta, v, eps=1e-5):
    def grad_at(x):
        params = {k: t.clone().requires_grad_() for k, t in unflatten(x, theta).items()}
        return flatten(torch.autograd.grad(kl_of_theta(params), list(params.values())))

    x0 = flatten(theta.values())
    return (grad_at(x0 + eps * v) - grad_at(x0 - eps * v)) / (2 * eps)


def test_meta_kl_hvp_matches_finite_differences_through_adaptation():
    for first_order in (False, True):
        policy, inner, theta, support, adapt, adapted, kl_hvp, kl_of_theta = _meta_kl_problem(
            first_order, steps=2
        )
        _, vjp = torch.func.vjp(adapt, theta)
        hvp = meta_kl_hvp(adapt, lambda w, vjp=vjp: vjp(w)[0], theta, kl_hvp)
        v = torch.randn(
            flatten(theta.values()).numel(),
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(3),
        )
        expected = _reference_hvp(kl_of_theta, theta, v, first_order)
        torch.testing.assert_close(hvp(v), expected, atol=1e-6, rtol=1e-5)


def test_one_step_fast_path_matches_finite_differences():
    for first_order in (False, True):
        policy, inner, theta, support, adapt, adapted, kl_hvp, kl_of_theta = _meta_kl_problem(
            first_order, steps=1
        )
        hvp, jt = one_step_kl_hvp(
            lambda p, policy=policy, s=support[0]: reinforce_loss(policy, p, s, batched=True).sum(),
            theta,
            3,
            inner.spec.lr,
            first_order,
            kl_hvp,
        )
        v = torch.randn(
            flatten(theta.values()).numel(),
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(4),
        )
        expected = _reference_hvp(kl_of_theta, theta, v, first_order)
        torch.testing.assert_close(hvp(v), expected, atol=1e-6, rtol=1e-5)
        # jt is the transposed Jacobian of the adaptation: compare with torch.func.vjp
        w = {k: torch.randn_like(t) for k, t in adapted.items()}
        _, vjp = torch.func.vjp(adapt, theta)
        expected = vjp(w)[0]
        got = jt(w)
        for k in theta:
            torch.testing.assert_close(got[k], expected[k], atol=1e-10, rtol=1e-8)


def test_inner_step_vmap_equals_loop_equals_an_independent_reinforce_step():
    """The inner policy-gradient step in the mode that runs (vmap) and in the loop, against a
    step written here from torch.distributions: theta_i' = theta - lr * grad of
    -sum(log N(a | mu, sigma) * A * mask) / sum(mask), task by task."""
    policy, _, theta, support, *_ = _meta_kl_problem(first_order=False, steps=1)
    data = support[0]
    steps = {
        mode: InnerLoop(policy, InnerSpec(0.3), task_batching=mode).step(theta, data)
        for mode in ("vmap", "loop")
    }
    for i in range(data.obs.shape[0]):
        params = {k: v.clone().requires_grad_() for k, v in theta.items()}
        mean, log_std = torch.func.functional_call(policy, params, (data.obs[i],))
        dist = torch.distributions.Normal(mean, log_std.exp())
        logp = dist.log_prob(data.actions[i]).sum(-1)
        mask = data.mask[i]
        loss = -(logp * data.advantages[i] * mask).sum() / mask.sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        for (name, value), g in zip(theta.items(), grads):
            expected = value - 0.3 * g
            for mode, stepped in steps.items():
                torch.testing.assert_close(stepped[name][i], expected, msg=f"{mode}: {name}")
