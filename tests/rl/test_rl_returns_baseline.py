import torch

from metarl.rl.baseline import baseline_features, fit_linear_baseline, linear_baseline_values
from metarl.rl.returns import discounted_returns, gae, normalize_advantages


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(3, 4, 12, generator=g, dtype=torch.float64)
    lengths = torch.randint(5, 13, (3, 4), generator=g)
    mask = (torch.arange(12) < lengths.unsqueeze(-1)).double()
    values = torch.randn(3, 4, 12, generator=g, dtype=torch.float64)
    return rewards * mask, values, mask, lengths


def test_discounted_returns_match_loop():
    rewards, _, mask, lengths = _batch()
    out = discounted_returns(rewards, mask, 0.9)
    for i in range(3):
        for j in range(4):
            g = 0.0
            for t in reversed(range(int(lengths[i, j]))):
                g = float(rewards[i, j, t]) + 0.9 * g
                assert abs(float(out[i, j, t]) - g) < 1e-10
            assert float(out[i, j, int(lengths[i, j]) :].abs().sum()) == 0.0


def test_gae_matches_python_loop():
    rewards, values, mask, lengths = _batch(1)
    gamma, lam = 0.99, 0.95
    out = gae(rewards, values, mask, gamma, lam)
    for i in range(3):
        for j in range(4):
            n = int(lengths[i, j])
            v = [float(x) for x in values[i, j, :n]] + [0.0]
            adv = 0.0
            for t in reversed(range(n)):
                delta = float(rewards[i, j, t]) + gamma * v[t + 1] - v[t]
                adv = delta + gamma * lam * adv
                assert abs(float(out[i, j, t]) - adv) < 1e-10
            assert float(out[i, j, n:].abs().sum()) == 0.0


def test_gae_lambda_one_is_returns_minus_values():
    rewards, values, mask, _ = _batch(2)
    out = gae(rewards, values, mask, 0.99, 1.0)
    expected = discounted_returns(rewards, mask, 0.99) - values * mask
    torch.testing.assert_close(out, expected)


def test_normalized_advantages_per_task():
    rewards, values, mask, _ = _batch(3)
    adv = normalize_advantages(gae(rewards, values, mask, 0.99, 1.0), mask)
    count = mask.sum((1, 2))
    mean = (adv * mask).sum((1, 2)) / count
    var = ((adv - mean[:, None, None]) ** 2 * mask).sum((1, 2)) / count
    torch.testing.assert_close(mean, torch.zeros(3, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(var, torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)


def _rllab_features(o, t):
    """rllab's LinearFeatureBaseline features of one step, written out by hand: the clipped
    observation, its square, t/100 and its square and cube, and 1."""
    o = [min(10.0, max(-10.0, float(v))) for v in o]
    s = t / 100.0
    return [*o, *(v * v for v in o), s, s * s, s * s * s, 1.0]


def test_linear_baseline_equals_lstsq_on_the_rllab_features():
    g = torch.Generator().manual_seed(4)
    obs = 6 * torch.randn(3, 5, 20, 2, generator=g, dtype=torch.float64)  # some beyond +-10
    mask = torch.ones(3, 5, 20, dtype=torch.float64)
    mask[0, 0, 15:] = 0
    returns = torch.randn(3, 5, 20, generator=g, dtype=torch.float64) * mask
    weights = fit_linear_baseline(obs, returns, mask, reg_coeff=0.0)
    feats = baseline_features(obs, mask)
    for i in range(3):
        rows = [
            (_rllab_features(obs[i, e, t], t), float(returns[i, e, t]))
            for e in range(5)
            for t in range(20)
            if mask[i, e, t] > 0
        ]
        x = torch.tensor([r[0] for r in rows], dtype=torch.float64)
        y = torch.tensor([[r[1]] for r in rows], dtype=torch.float64)
        valid = mask[i].reshape(-1) > 0
        torch.testing.assert_close(feats[i].reshape(-1, feats.shape[-1])[valid], x)
        expected = torch.linalg.lstsq(x, y).solution.squeeze(-1)
        torch.testing.assert_close(weights[i], expected, atol=1e-8, rtol=1e-6)
    values = linear_baseline_values(obs, returns, mask, reg_coeff=0.0)
    assert values.shape == returns.shape
    assert float((values * (1 - mask)).abs().sum()) == 0.0


def test_linear_baseline_singular_raises_regularisation():
    obs = torch.zeros(2, 3, 10, 2, dtype=torch.float64)  # constant features: singular X^T X
    mask = torch.ones(2, 3, 10, dtype=torch.float64)
    returns = torch.ones(2, 3, 10, dtype=torch.float64)
    weights = fit_linear_baseline(obs, returns, mask, reg_coeff=0.0)
    assert torch.isfinite(weights).all()
    values = linear_baseline_values(obs, returns, mask)
    torch.testing.assert_close(values, returns, atol=1e-2, rtol=0)


def test_linear_baseline_fits_ant_episodes_on_two_threads():
    """Ant's features have all-zero contact columns; on 2 threads MKL's batched LU called these
    regularised systems singular and solve_ex raised. The fit must solve its normal equations."""
    import numpy as np

    from metarl.rl import build
    from metarl.run.config import load_config

    sets = ["algo.meta_batch_size=4", "algo.episodes_per_task=5", "policy.activation=tanh"]
    exp = build(load_config("configs/maml_trpo/ant_vel.yaml", sets))
    tasks = exp.task_env.sample_tasks(4, np.random.default_rng(0))
    params = {k: v.detach() for k, v in exp.policy.named_parameters()}
    traj = exp.sampler.sample(params, tasks, 5)
    exp.close()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        weights = fit_linear_baseline(traj.obs, traj.returns.unsqueeze(-1) * traj.mask, traj.mask)
    finally:
        torch.set_num_threads(threads)
    assert torch.isfinite(weights).all() and weights.abs().sum() > 0
    feats = baseline_features(traj.obs, traj.mask).double().flatten(1, 2)
    targets = (traj.returns.unsqueeze(-1) * traj.mask).double().flatten(1, 2)
    xtx = feats.transpose(1, 2) @ feats + 1e-5 * torch.eye(feats.shape[-1], dtype=torch.float64)
    residual = xtx @ weights.unsqueeze(-1) - (feats.transpose(1, 2) @ targets.unsqueeze(-1))
    scale = (feats.transpose(1, 2) @ targets.unsqueeze(-1)).abs().max()
    assert float(residual.abs().max() / scale) < 1e-6
