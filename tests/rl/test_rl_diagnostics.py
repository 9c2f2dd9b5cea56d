"""Per-iteration diagnostics: each value against a hand-built policy and batch whose answer is
known from the construction, and the diag/ keys of a real training iteration."""

import gymnasium
import numpy as np
import pytest
import torch

from metarl.rl import build
from metarl.rl.diagnostics import policy_diagnostics
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampling.actions import ActionMap
from metarl.rl.trajectories import Trajectories

BOX = gymnasium.spaces.Box(-1.0, 1.0, (2,))


def _policy(activation, first_weight, first_bias, out_bias=(0.0, 0.0), log_std=(0.0, 0.0)):
    """2 inputs, one hidden layer of 4 units, 2 actions, with the given first layer."""
    policy = GaussianMLPPolicy(2, 2, (4,), activation, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        policy.layers[0].weight.copy_(torch.tensor(first_weight))
        policy.layers[0].bias.copy_(torch.tensor(first_bias))
        policy.layers[1].weight.zero_()  # the mean action is the output bias in every state
        policy.layers[1].bias.copy_(torch.tensor(out_bias))
        policy.log_std.copy_(torch.tensor(log_std))
    return policy


def _batch(actions=None, reward_ctrl=None):
    """2 tasks x 3 episodes x 5 steps, observations N(0, 1), the last step of each episode
    outside it (mask 0)."""
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(2, 3, 5, 2, generator=g)
    mask = torch.ones(2, 3, 5)
    mask[..., -1] = 0.0
    rewards = torch.randn(2, 3, 5, generator=g) * mask
    if actions is None:
        actions = torch.zeros(2, 3, 5, 2)
    return Trajectories(
        obs=obs,
        actions=actions,
        rewards=rewards,
        mask=mask,
        returns=rewards.sum(-1),
        lengths=mask.sum(-1).long(),
        reward_ctrl=reward_ctrl,
    )


def test_relu_units_that_never_or_always_fire():
    # unit 0 never fires (bias -1), unit 1 always (bias +1), units 2 and 3 follow an input's sign
    policy = _policy("relu", [[0, 0], [0, 0], [1, 0], [0, 1]], [-1, 1, 0, 0])
    d = policy_diagnostics(policy, dict(policy.named_parameters()), _batch(), BOX, ActionMap())
    assert d["dead_units"] == 0.25 and d["always_on_units"] == 0.25


def test_tanh_units_that_saturate_or_stay_linear():
    # unit 0 saturated (bias 5), units 1 and 3 near 0 (linear), unit 2 spans both regimes
    policy = _policy("tanh", [[0, 0], [0, 0], [10, 0], [0, 0.01]], [5, 0.1, 0, 0])
    d = policy_diagnostics(policy, dict(policy.named_parameters()), _batch(), BOX, ActionMap())
    assert d["dead_units"] == 0.25 and d["always_on_units"] == 0.5


def test_action_statistics_in_env_units_over_valid_steps():
    policy = _policy("tanh", [[1, 0]] * 4, [0] * 4, out_bias=(0.6, -1.0), log_std=(-0.5, 0.1))
    actions = torch.zeros(2, 3, 5, 2)
    actions[0, :, :2, 0] = 2.5  # 6 valid steps, one component each beyond 2 (= the bound x2)
    actions[1, :, 4, :] = 9.0  # outside the episodes: must not count
    batch = _batch(actions, reward_ctrl=-0.1 * torch.ones(2, 3, 5) * _batch().mask)
    d = policy_diagnostics(
        policy, dict(policy.named_parameters()), batch, BOX, ActionMap(scale=2.0)
    )
    valid_components = 2 * 3 * 4 * 2
    assert d["clipped_actions"] == pytest.approx(6 / valid_components)
    assert d["abs_action_mean"] == pytest.approx((0.6 / 2 + 1.0 / 2) / 2)
    assert d["log_std"] == pytest.approx(-0.2)
    assert d["reward_ctrl"] == pytest.approx(-0.4)  # 4 valid steps of -0.1 per episode
    assert d["reward_task"] == pytest.approx(float(batch.returns.mean()) + 0.4, abs=1e-6)


def test_clipped_observations_only_with_normalisation_and_over_valid_steps():
    policy = _policy("tanh", [[1, 0]] * 4, [0] * 4)
    batch = _batch()
    d = policy_diagnostics(policy, dict(policy.named_parameters()), batch, BOX, ActionMap())
    assert "clipped_obs" not in d
    # std 0.1 on the first input: its standardised value is 10 |obs - 0.5|, beyond the clip of
    # 10 where |obs - 0.5| > 1; counted here over the valid steps and both components
    policy.set_obs_normalization(torch.tensor([0.5, 0.0]), torch.tensor([0.1, 1.0]))
    d = policy_diagnostics(policy, dict(policy.named_parameters()), batch, BOX, ActionMap())
    valid = batch.mask > 0
    first, second = batch.obs[..., 0][valid], batch.obs[..., 1][valid]
    expected = (int(((first - 0.5).abs() > 1).sum()) + int((second.abs() > 10).sum())) / (
        2 * len(first)
    )
    assert 0 < expected < 0.5 and d["clipped_obs"] == pytest.approx(expected)


@pytest.mark.slow
def test_training_logs_diagnostics_and_the_reward_split_on_half_cheetah():
    from metarl.rl import RLConfig

    cfg = RLConfig.model_validate(
        {
            "train": {"iterations": 1},
            "env": {"id": "metarl/HalfCheetahDir-v0", "horizon": 20},
            "policy": {"hidden_sizes": [16, 16]},
            "algo": {"meta_batch_size": 2, "episodes_per_task": 3},
        }
    )
    exp = build(cfg)
    try:
        m = exp.train_iteration(0)
        traj = exp.algo.pre_update_episodes
    finally:
        exp.close()
    # the control cost of the executed (clipped) actions, derived here from the recorded ones
    executed = np.clip(traj.actions.numpy(), -1.0, 1.0)
    ctrl = -0.05 * (executed**2).sum(-1).sum(-1).mean()
    assert m["diag/reward_ctrl"] == pytest.approx(ctrl, rel=1e-4)
    assert m["diag/reward_task"] + m["diag/reward_ctrl"] == pytest.approx(
        m["train/return_before"], rel=1e-4, abs=1e-4
    )
    # noise of std 1 on a [-1, 1] box: about a third of the components are clipped
    assert 0.2 < m["diag/clipped_actions"] < 0.6
    assert m["diag/log_std"] == 0.0  # measured on the pre-update (initial) policy
