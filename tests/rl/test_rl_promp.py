"""ProMP: the LVC estimator against exact expectations, the outer objective against its formula,
training, checkpoints, and the config's refusals.

The references are written from the definitions with plain autograd and torch.distributions
(or closed forms of a tabular policy); none of metarl's losses, inner loop or learner take part
in them.
"""

import io
import itertools

import pytest
import torch
from pydantic import ValidationError
from rl_testing import nav_tasks, small_config

from metarl.core import InnerSpec, named_params
from metarl.rl import build
from metarl.rl.algos.promp import ProMP
from metarl.rl.inner_loop import InnerLoop
from metarl.rl.losses import lvc_loss, reinforce_loss
from metarl.rl.policies import CategoricalMLPPolicy
from metarl.rl.trajectories import PGBatch

# -- the LVC estimator on a tabular two-step MDP, every trajectory enumerated -------------------
#: state 0 --a0--> state 1 + a0 --a1--> end; rewards r(s, a)
REWARD = torch.tensor([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7]], dtype=torch.float64)
EYE = torch.eye(3, dtype=torch.float64)


def _tabular_policy():
    policy = CategoricalMLPPolicy(3, 2, (), generator=torch.Generator().manual_seed(3)).double()
    with torch.no_grad():  # non-zero biases too, so no action probability is 1/2
        policy.layers[0].bias.copy_(torch.tensor([0.4, -0.3], dtype=torch.float64))
    return policy


def _unflatten(vector, like):
    out, i = {}, 0
    for name, value in like.items():
        out[name] = vector[i : i + value.numel()].view_as(value)
        i += value.numel()
    return out


def _log_pi(params, state, action):
    """Closed form of the tabular policy: ``log softmax(W e_s + b)[a]``."""
    logits = params["layers.0.weight"] @ EYE[state] + params["layers.0.bias"]
    return torch.log_softmax(logits, -1)[action]


def _trajectories():
    """The four trajectories ``((s0, a0), (s1, a1))`` with rewards-to-go and rewards."""
    out = []
    for a0, a1 in itertools.product((0, 1), repeat=2):
        s1 = 1 + a0
        r0, r1 = REWARD[0, a0], REWARD[s1, a1]
        out.append(((0, a0), (s1, a1), (r0 + r1, r1), (r0, r1)))
    return out


def _expected_return(params):
    """``J(theta) = sum_tau P_theta(tau) R(tau)``, exactly."""
    total = 0.0
    for (s0, a0), (s1, a1), _, (r0, r1) in _trajectories():
        total = total + torch.exp(_log_pi(params, s0, a0) + _log_pi(params, s1, a1)) * (r0 + r1)
    return total


def _batch(params_o):
    """The four trajectories as a batch whose advantages carry their probabilities under
    ``theta_o`` (times the 8 steps the losses average over), so a loss's sample mean is its
    exact expectation over trajectories of ``pi_theta_o``."""
    obs, actions, adv, old_logp = [], [], [], []
    for (s0, a0), (s1, a1), (ret0, ret1), _ in _trajectories():
        logp = [_log_pi(params_o, s0, a0), _log_pi(params_o, s1, a1)]
        prob = torch.exp(logp[0] + logp[1])
        obs.append(EYE[[s0, s1]])
        actions.append(torch.tensor([a0, a1]))
        adv.append(8.0 * prob * torch.stack([ret0, ret1]))
        old_logp.append(torch.stack(logp))
    mask = torch.ones(4, 2, dtype=torch.float64)
    return PGBatch(
        torch.stack(obs), torch.stack(actions), torch.stack(adv), mask, torch.stack(old_logp)
    )


def _scores(params_o):
    """``[(P(tau), r_1, g_0, g_1, G_0, G_1)]`` per trajectory: its probability, second reward,
    per-step scores ``g_t = grad log pi(a_t|s_t)`` and rewards-to-go ``G_t``, by closed form."""
    flat = torch.cat([v.reshape(-1) for v in params_o.values()])
    out = []
    for (s0, a0), (s1, a1), (ret0, ret1), (_, r1) in _trajectories():

        def log_pi(v, s, a):
            return _log_pi(_unflatten(v, params_o), s, a)

        score0 = torch.func.grad(log_pi)(flat, s0, a0)
        score1 = torch.func.grad(log_pi)(flat, s1, a1)
        prob = torch.exp(log_pi(flat, s0, a0) + log_pi(flat, s1, a1))
        out.append((prob, r1, score0, score1, ret0, ret1))
    return out


def test_lvc_gradient_is_the_policy_gradient_and_its_hessian_the_low_variance_curvature():
    policy = _tabular_policy()
    params_o = {k: v.detach() for k, v in named_params(policy).items()}
    data = _batch(params_o)
    flat_o = torch.cat([v.reshape(-1) for v in params_o.values()])

    def lvc(v):
        return lvc_loss(policy, _unflatten(v, params_o), data)

    def reinforce(v):
        return reinforce_loss(policy, _unflatten(v, params_o), data)

    def expected_return(v):
        return _expected_return(_unflatten(v, params_o))

    # the gradient at theta_o is REINFORCE's, and here the exact policy gradient
    torch.testing.assert_close(torch.func.grad(lvc)(flat_o), torch.func.grad(reinforce)(flat_o))
    exact_gradient = torch.func.grad(expected_return)(flat_o)
    assert exact_gradient.abs().max() > 0.1
    torch.testing.assert_close(-torch.func.grad(lvc)(flat_o), exact_gradient)

    # Hessian: the exact one minus the cross-time score products (Rothfuss et al. 2019, section 5:
    # LVC keeps sum_t (grad^2 log pi_t + g_t g_t^T) G_t), REINFORCE's lacks the g_t g_t^T G_t
    exact_hessian = torch.func.hessian(expected_return)(flat_o)
    cross = sum(
        p * r1 * (torch.outer(g0, g1) + torch.outer(g1, g0))
        for p, r1, g0, g1, _, _ in _scores(params_o)
    )
    outer = sum(
        p * (ret0 * torch.outer(g0, g0) + ret1 * torch.outer(g1, g1))
        for p, _, g0, g1, ret0, ret1 in _scores(params_o)
    )
    lvc_hessian = -torch.func.hessian(lvc)(flat_o)
    reinforce_hessian = -torch.func.hessian(reinforce)(flat_o)
    torch.testing.assert_close(lvc_hessian, exact_hessian - cross)
    torch.testing.assert_close(lvc_hessian - reinforce_hessian, outer)
    scale = exact_hessian.abs().max()
    assert (lvc_hessian - reinforce_hessian).abs().max() > 0.1 * scale
    assert cross.abs().max() > 0.1 * scale  # LVC is biased: it drops the cross terms


def test_lvc_inner_step_equals_the_reinforce_step_at_the_sampling_policy(small_policy, nav_sampler):
    theta = {k: v.detach() for k, v in named_params(small_policy).items()}
    traj = nav_sampler.sample(theta, nav_tasks(2), 4)
    lvc = InnerLoop(small_policy, InnerSpec(0.1), loss="lvc")
    reinforce = InnerLoop(small_policy, InnerSpec(0.1))
    with_logp = lvc.batch(traj, theta)
    assert with_logp.old_logp is not None and reinforce.batch(traj, theta).old_logp is None
    for mode in ("vmap", "loop"):
        lvc.task_batching = reinforce.task_batching = mode
        a = lvc.step(theta, with_logp)
        b = reinforce.step(theta, reinforce.batch(traj))
        for name in theta:
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sampling policy's log-probabilities"):
        lvc.step(theta, reinforce.batch(traj))
    with pytest.raises(ValueError, match="inner loss must be one of"):
        InnerLoop(small_policy, InnerSpec(0.1), loss="dice")


# -- the outer objective ------------------------------------------------------------------------
def _normal(policy, params, obs):
    mean, log_std = torch.func.functional_call(policy, params, (obs,))
    return torch.distributions.Normal(mean, log_std.exp())


def _masked(x, mask):
    return (x * mask).sum() / mask.sum()


def _reference_objective(policy, theta_o, theta, batch, lr, clip_eps, eta):
    """``-J^ProMP(theta)`` from its definition, task by task: LVC inner steps (each step's ratio
    against the policy that sampled its episodes, which are theta_o's inner steps), the clipped
    ratio of the adapted policy against theta_o's adapted policy on the post-update episodes,
    and ``eta_k * KL(pi_{theta_o, k} || pi_{theta, k})`` on each step's pre-update episodes."""
    names = list(theta)
    tasks = batch.query.obs.shape[0]
    surrogate, kls, outside = 0.0, torch.zeros(len(batch.support)), []
    for i in range(tasks):
        p_o, p = dict(theta_o), dict(theta)
        for k, data in enumerate(batch.support):
            obs, act, adv, mask = data.obs[i], data.actions[i], data.advantages[i], data.mask[i]
            old = _normal(policy, p_o, obs)
            new = _normal(policy, p, obs)
            kl = torch.distributions.kl_divergence(old, new).sum(-1)
            kls = kls + torch.eye(len(batch.support))[k] * _masked(kl, mask) / tasks
            old_logp = old.log_prob(act).sum(-1).detach()

            def lvc(q, obs=obs, act=act, adv=adv, mask=mask, old_logp=old_logp):
                ratio = torch.exp(_normal(policy, q, obs).log_prob(act).sum(-1) - old_logp)
                return -_masked(ratio * adv, mask)

            leaf_o = {n: v.detach().requires_grad_() for n, v in p_o.items()}
            g_o = torch.autograd.grad(lvc(leaf_o), [leaf_o[n] for n in names])
            p_o = {n: (p_o[n] - lr * g).detach() for n, g in zip(names, g_o)}
            g = torch.autograd.grad(lvc(p), [p[n] for n in names], create_graph=True)
            p = {n: p[n] - lr * gn for n, gn in zip(names, g)}
        q = batch.query
        obs, act, adv, mask = q.obs[i], q.actions[i], q.advantages[i], q.mask[i]
        old_logp = _normal(policy, p_o, obs).log_prob(act).sum(-1)
        ratio = torch.exp(_normal(policy, p, obs).log_prob(act).sum(-1) - old_logp)
        clipped = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
        surrogate = surrogate - _masked(clipped, mask) / tasks
        outside.append(_masked(((ratio - 1).abs() > clip_eps).double(), mask))
    penalty = (torch.tensor(eta) * kls).mean()
    return surrogate + penalty, kls, float(sum(outside) / tasks)


@pytest.mark.parametrize("steps", [1, 2])
def test_outer_objective_and_its_gradient_equal_the_formula(steps):
    cfg = small_config(
        "promp",
        meta_batch_size=3,
        episodes_per_task=4,
        clip_eps=0.1,
        init_inner_kl_penalty=0.7,
        inner={"lr": 0.1, "steps": steps},
    )
    exp = build(cfg)
    algo, policy = exp.algo, exp.policy
    batch = algo.sample(nav_tasks(3))
    theta_o = {k: v.detach().clone() for k, v in named_params(policy).items()}
    noise = torch.Generator().manual_seed(1)
    theta = {k: v + 0.05 * torch.randn(v.shape, generator=noise) for k, v in theta_o.items()}
    leaves = {k: v.clone().requires_grad_() for k, v in theta.items()}
    got = algo.objective(leaves, batch)
    got_grad = torch.autograd.grad(got.loss, list(leaves.values()))

    refs = {k: v.clone().requires_grad_() for k, v in theta.items()}
    eta = [0.7] * steps
    loss, kls, outside = _reference_objective(policy, theta_o, refs, batch, 0.1, 0.1, eta)
    grad = torch.autograd.grad(loss, list(refs.values()))
    assert 0.05 < outside < 0.95  # both sides of the clip take part
    assert float(kls.detach().min()) > 1e-4  # and the KL penalty
    torch.testing.assert_close(got.loss, loss.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.inner_kl, kls.detach(), rtol=1e-4, atol=1e-7)
    for g, r in zip(got_grad, grad):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-5)
    assert abs(float(algo.clip_fraction(got.adapted, batch.query)) - outside) < 1e-6


# -- training, checkpoints, config --------------------------------------------------------------
@pytest.mark.slow
def test_promp_improves_adapted_return_on_navigation():
    exp = build(small_config("promp"))
    before = exp.evaluate()
    metrics = [exp.train_iteration(i) for i in range(10)]
    after = exp.evaluate()
    for key in ("train/kl", "train/kl_inner", "train/clip_fraction", "train/inner_kl_penalty"):
        assert key in metrics[-1]
    # seeded run (horizon 50): -41.3 -> -21.8 after one step; assert a margin, not the value
    assert after.mean[1] > before.mean[1] + 10.0
    assert after.mean[1] > after.mean[0]  # adaptation helps after meta-training


def test_state_dict_round_trip_resumes_identically():
    """Adam's moments and the adaptive eta are part of the checkpoint."""
    cfg = small_config(
        "promp", meta_batch_size=4, adaptive_inner_kl_penalty=True, target_inner_step=1e-4
    )
    exp = build(cfg)
    for i in range(2):
        exp.train_iteration(i)
    assert exp.algo.inner_kl_penalty != [5e-4]  # the adaptive eta moved
    buffer = io.BytesIO()
    torch.save(exp.state_dict(), buffer)
    buffer.seek(0)
    resumed = build(cfg)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.algo.inner_kl_penalty == exp.algo.inner_kl_penalty
    a, b = exp.train_iteration(2), resumed.train_iteration(2)
    for key in ("train/return_after", "train/kl", "train/kl_inner", "train/inner_kl_penalty"):
        assert a[key] == b[key]
    for k, v in exp.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k])
    assert resumed.algo.inner_kl_penalty == exp.algo.inner_kl_penalty
    fresh = build(cfg)  # without the learner's state the next step differs
    state = exp.state_dict()
    del state["learner"]
    fresh.load_state_dict(state)
    c, d = exp.train_iteration(3), fresh.train_iteration(3)
    assert c["train/kl"] != d["train/kl"]


def test_config_refuses_what_promp_does_not_do():
    with pytest.raises(ValidationError, match="ProMP differentiates through SGD inner steps"):
        small_config("promp", inner={"optimizer": "adam"})
    with pytest.raises(ValidationError, match="remove algo.inner.learn_lr"):
        small_config("promp", inner={"learn_lr": True})
    with pytest.raises(ValidationError, match="is a setting of maml_trpo, not promp"):
        small_config("promp", max_kl=0.05)
    with pytest.raises(ValidationError, match="clip_eps"):
        small_config("promp", clip_eps=1.5)
    with pytest.raises(ValidationError, match="num_ppo_steps"):
        small_config("promp", num_ppo_steps=0)
    exp = build(small_config("reptile", inner={"optimizer": "adam"}))
    with pytest.raises(ValueError, match="SGD steps"):
        ProMP(exp.inner, exp.sampler)
