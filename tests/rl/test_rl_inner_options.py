"""The core's inner-loop options in meta-RL: Meta-SGD's learned step sizes and ANIL's head-only
steps in MAML-TRPO, their curvature through the inner step, and their checkpoints."""

import numpy as np
import pytest
import torch
from rl_testing import small_config

from metarl.core import InnerSpec, named_params
from metarl.rl import build
from metarl.rl.algos.trpo import flatten, meta_kl_hvp, unflatten
from metarl.rl.inner_loop import InnerLoop
from metarl.rl.losses import kl_hessian_product, mean_kl
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.trajectories import PGBatch


def _batch(gen, tasks=3, eps=2, horizon=5):
    obs = torch.randn(tasks, eps, horizon, 2, generator=gen, dtype=torch.float64)
    act = torch.randn(tasks, eps, horizon, 2, generator=gen, dtype=torch.float64)
    adv = torch.randn(tasks, eps, horizon, generator=gen, dtype=torch.float64)
    return PGBatch(obs, act, adv, torch.ones(tasks, eps, horizon, dtype=torch.float64))


def test_meta_sgd_curvature_in_weights_and_step_sizes_matches_finite_differences():
    """With learned step sizes the trust region's metric covers theta and alpha together: the
    jvp/vjp product through the inner step equals central differences of the KL's gradient."""
    gen = torch.Generator().manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, (6,), "tanh", 0.0, gen).double()
    spec = InnerSpec(0.3, learn_lr=True)
    inner = InnerLoop(policy, spec, task_batching="loop")
    support, query = [_batch(gen)], _batch(gen)
    theta = {k: v.detach() for k, v in named_params(policy).items()}
    lrs = {
        k: v * (1 + 0.5 * torch.rand(v.shape, generator=gen))
        for k, v in spec.init_lrs(theta).items()
    }
    meta = {**theta, **{f"lr:{k}": v for k, v in lrs.items()}}

    def adapt(m):
        return inner.replay({k: m[k] for k in theta}, support, {k: m[f"lr:{k}"] for k in theta})

    with torch.no_grad():
        adapted = adapt(meta)
        old = policy.dist(adapted, query.obs)
    _, vjp = torch.func.vjp(adapt, meta)
    hvp = meta_kl_hvp(adapt, lambda w: vjp(w)[0], meta, kl_hessian_product(policy, adapted, query))

    def grad_at(x):
        m = {k: v.clone().requires_grad_() for k, v in unflatten(x, meta).items()}
        kl = mean_kl(policy, old, adapt(m), query)
        return flatten(torch.autograd.grad(kl, list(m.values())))

    x0 = flatten(meta.values())
    v = torch.randn(x0.numel(), generator=gen, dtype=torch.float64)
    expected = (grad_at(x0 + 1e-5 * v) - grad_at(x0 - 1e-5 * v)) / 2e-5
    torch.testing.assert_close(hvp(v), expected, atol=1e-6, rtol=1e-5)


def test_meta_sgd_maml_trpo_learns_step_sizes_within_the_trust_region_and_checkpoints_them():
    exp = build(small_config("maml_trpo", inner={"lr": 0.1, "learn_lr": True}))
    start = {k: v.clone() for k, v in exp.learned_lrs().items()}
    assert set(start) == set(named_params(exp.policy))
    assert all(torch.all(v == 0.1) for v in start.values())
    for i in range(2):
        m = exp.train_iteration(i)
        assert m["train/ls_accepted"] == 1.0  # trust region: test_rl_experiment.py
    moved = max(float((exp.learned_lrs()[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-4  # TRPO stepped the step sizes too
    state = exp.state_dict()
    fresh = build(small_config("maml_trpo", inner={"lr": 0.1, "learn_lr": True}))
    fresh.load_state_dict(state)
    for k, v in exp.learned_lrs().items():
        assert torch.equal(fresh.learned_lrs()[k], v)
    # evaluation adapts with the learned step sizes: a different curve from the initial ones
    assert exp.evaluate(4).mean[1] != build(small_config("maml_trpo")).evaluate(4).mean[1]


def test_anil_adapts_only_the_policy_head():
    exp = build(small_config("maml_trpo", inner={"adapt": "head"}))
    head = set(exp.policy.head_names())
    assert head == {"layers.2.weight", "layers.2.bias"}
    theta = {k: v.detach().clone() for k, v in named_params(exp.policy).items()}
    tasks = exp.task_env.sample_tasks(3, np.random.default_rng(0))
    _, _, adapted = exp.inner.run(exp.sampler, theta, tasks, 4, rng=np.random.default_rng(1))
    for k, v in theta.items():
        same = torch.equal(adapted[k], v.expand_as(adapted[k]))
        assert same != (k in head), k  # the trunk and log-std pass through, the head moves
    m = exp.train_iteration(0)
    assert m["train/ls_accepted"] == 1.0
    changed = [k for k, v in named_params(exp.policy).items() if not torch.equal(v, theta[k])]
    assert "layers.0.weight" in changed  # the trunk is meta-learned through the head's step


def test_inner_lr_schedule_is_used_by_the_training_steps():
    exp = build(small_config("maml_trpo", inner={"lr": [0.3, 0.05], "steps": 2}))
    theta = {k: v.detach() for k, v in named_params(exp.policy).items()}
    tasks = exp.task_env.sample_tasks(2, np.random.default_rng(0))
    _, batches, adapted = exp.inner.run(exp.sampler, theta, tasks, 4, rng=np.random.default_rng(1))
    p = theta
    for data, lr in zip(batches, (0.3, 0.05)):
        p = exp.inner.step(p, data, lr=lr)
    for k in adapted:
        torch.testing.assert_close(adapted[k], p[k])
    assert exp.inner.replay(theta, batches)["layers.0.weight"].allclose(adapted["layers.0.weight"])
    with pytest.raises(ValueError, match="schedule"):
        small_config("maml_trpo", inner={"lr": [0.3, 0.05], "learn_lr": True})


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_adam_inner_steps_equal_torch_optim_adam_on_each_tasks_reinforce_loss(mode):
    """Two Adam inner steps on two stored batches, against ``torch.optim.Adam`` stepping each
    task's REINFORCE loss written here from torch.distributions."""
    gen = torch.Generator().manual_seed(3)
    policy = GaussianMLPPolicy(2, 2, hidden_sizes=(8,), activation="tanh").double()
    theta = {k: v.detach() for k, v in named_params(policy).items()}
    batches = [_batch(gen), _batch(gen)]
    spec = InnerSpec(0.05, steps=2, first_order=True, optimizer="adam")
    inner = InnerLoop(policy, spec, task_batching=mode)
    params, state = theta, None
    for k, data in enumerate(batches):
        params, state = inner.optimizer_step(params, data, k, state)
    for i in range(3):
        leaves = {k: v.clone().requires_grad_() for k, v in theta.items()}
        adam = torch.optim.Adam(leaves.values(), lr=0.05, betas=(0.0, 0.999))
        for data in batches:
            mean, log_std = torch.func.functional_call(policy, leaves, (data.obs[i],))
            logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(data.actions[i])
            mask = data.mask[i]
            adam.zero_grad()
            (-(logp.sum(-1) * data.advantages[i] * mask).sum() / mask.sum()).backward()
            adam.step()
        for name, value in leaves.items():
            torch.testing.assert_close(params[name][i], value.detach())


def test_adam_inner_steps_train_reptile_and_are_refused_by_maml_trpo():
    with pytest.raises(ValueError, match="MAML-TRPO differentiates through SGD inner steps"):
        small_config("maml_trpo", inner={"optimizer": "adam"})
    exp = build(small_config("reptile", inner={"lr": 0.01, "steps": 2, "optimizer": "adam"}))
    before = {k: v.clone() for k, v in named_params(exp.policy).items()}
    metrics = exp.train_iteration(0)
    assert metrics["train/param_change"] > 0
    after = named_params(exp.policy)
    assert all(not torch.equal(before[k], after[k]) for k in before)
