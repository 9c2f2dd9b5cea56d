"""``policy.normalize_obs``: fixed observation statistics from random-action episodes."""

import pytest
import torch
from rl_testing import small_config

from metarl.rl import build
from metarl.rl.policies import OBS_CLIP, GaussianMLPPolicy


def _normalized(cfg_update=None):
    c = small_config("maml_trpo")
    return c.model_copy(
        update={
            "policy": c.policy.model_copy(update={"normalize_obs": True}),
            **(cfg_update or {}),
        }
    )


def test_the_policy_reads_standardised_clipped_observations_in_every_layout():
    torch.manual_seed(0)
    plain = GaussianMLPPolicy(3, 2, (8,), "tanh", generator=torch.Generator().manual_seed(0))
    normed = GaussianMLPPolicy(3, 2, (8,), "tanh", generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 4.0])
    normed.set_obs_normalization(mean, std)
    obs = torch.tensor([[3.0, -2.5, 0.5], [1.0, 100.0, -1.5]])  # 100 -> 204 std -> clipped
    by_hand = ((obs - mean) / std).clamp(-OBS_CLIP, OBS_CLIP)
    assert by_hand[1, 1] == OBS_CLIP
    params = dict(plain.named_parameters())
    for a, b in zip(normed.dist(params, obs), plain.dist(params, by_hand)):
        torch.testing.assert_close(a, b)
    stacked = {k: torch.stack([v, 2 * v]) for k, v in params.items()}  # two tasks' weights
    two = torch.stack([obs, obs.flip(0)])
    for a, b in zip(
        normed.dist(stacked, two),
        plain.dist(stacked, torch.stack([by_hand, by_hand.flip(0)])),
    ):
        torch.testing.assert_close(a, b)
    pre_n = normed.hidden_preactivations(params, obs)[0]
    torch.testing.assert_close(pre_n, plain.hidden_preactivations(params, by_hand)[0])
    with pytest.raises(ValueError, match="positive std"):
        normed.set_obs_normalization(mean, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        normed.set_obs_normalization(mean[:2], std[:2])


def test_statistics_are_fixed_seeded_and_leave_the_other_streams_alone():
    base, normed = build(small_config("maml_trpo")), build(_normalized())
    mean, std = normed.policy.obs_mean, normed.policy.obs_std
    # Navigation2D starts every episode at the origin and moves at most 0.1 per step, so the
    # positions of random-action episodes spread around 0 with a std well below the horizon's
    # reach (50 x 0.1) and above one step's
    assert mean.abs().max() < 1.0 and (std > 0.05).all() and (std < 5.0).all()
    again = build(_normalized())
    torch.testing.assert_close(again.policy.obs_mean, mean)
    other = build(_normalized({"seed": 1}))
    assert not torch.equal(other.policy.obs_mean, mean)
    # the same initial weights and random streams as without normalisation (paired runs)
    for name, p in base.policy.named_parameters():
        torch.testing.assert_close(dict(normed.policy.named_parameters())[name], p)
    assert normed.state_dict()["sample_rng"] == base.state_dict()["sample_rng"]
    assert normed.state_dict()["task_rng"] == base.state_dict()["task_rng"]
    # training moves the weights, never the statistics; a checkpoint restores them
    for i in range(2):
        normed.train_iteration(i)
    torch.testing.assert_close(normed.policy.obs_mean, mean)
    state = normed.state_dict()
    assert "obs_mean" in state["policy"] and "obs_std" in state["policy"]
    state["policy"]["obs_mean"] = state["policy"]["obs_mean"] + 1.0
    fresh = build(_normalized())
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.policy.obs_mean, mean + 1.0)


def test_observations_of_random_episodes_come_out_standardised():
    """Independent episodes of random actions (another seed's) map to roughly zero mean and
    unit spread per dimension through the measured statistics."""
    import gymnasium

    from metarl.rl.obs_statistics import random_action_statistics

    env = gymnasium.make("metarl/Navigation2D-v0")
    mean, std = random_action_statistics(env, 100, seed=0)
    fresh_mean, fresh_std = random_action_statistics(env, 100, seed=123)
    z_mean = (fresh_mean - mean) / std
    z_std = fresh_std / std
    assert z_mean.abs().max() < 0.5
    assert ((z_std > 0.6) & (z_std < 1.6)).all()


def test_sb3_refuses_a_normalised_policy():
    from stable_baselines3 import PPO

    from metarl.rl.sb3_policy import load_into_sb3, sb3_env, sb3_policy_kwargs

    with pytest.raises(ValueError, match="normalize_obs"):
        sb3_policy_kwargs(_normalized().policy)
    exp = build(_normalized())
    kwargs = sb3_policy_kwargs(small_config().policy)
    sb3 = PPO("MlpPolicy", sb3_env(exp.env), policy_kwargs=kwargs, n_steps=64, device="cpu")
    with pytest.raises(ValueError, match="normalize_obs"):
        load_into_sb3(exp.policy, sb3)
