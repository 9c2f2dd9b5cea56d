"""Moving policies between Stable-Baselines3 and metarl: after a short SB3 training run the
converted policy's action distribution equals SB3's; the SB3 network built from a metarl policy
config has metarl's parameters; what cannot be equal is refused."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from rl_testing import NAV, small_config
from sb3_contrib import TRPO
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch import nn

import envs  # noqa: F401
from metarl.core import named_params
from metarl.rl import build, make_policy
from metarl.rl.config import PolicyConfig, SamplerConfig
from metarl.rl.sb3_policy import (
    load_into_sb3,
    policy_from_sb3,
    sb3_action_space,
    sb3_env,
    sb3_parameter_names,
    sb3_policy_kwargs,
)

CHEETAH = "metarl/HalfCheetahVel-v0"
TABULAR = "metarl/TabularMDP-v0"  # Discrete(5) actions
RESCALE = SamplerConfig(rescale_actions=True)  # as configs/maml_trpo/navigation2d.yaml
ALGOS = {"ppo": PPO, "trpo": TRPO}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sb3_model(algo: str, env: gymnasium.Env, policy_kwargs: dict, seed: int = 0, **kwargs):
    """A tiny on-policy SB3 model (64-step rollouts) on the CPU."""
    return ALGOS[algo](
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=64,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
        **kwargs,
    )


def random_obs(dim: int, n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def assert_same_distribution(sb3_policy, policy, obs_dim: int) -> None:
    """Distribution parameters and log-probabilities of fixed actions, SB3's against metarl's
    functional call (the path of the inner loop), on fixed random observations."""
    obs = random_obs(obs_dim)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        theirs = sb3_policy.get_distribution(obs)
        ours = policy.dist(named_params(policy), obs)
        if policy.discrete:
            actions = torch.randint(0, policy.num_actions, (len(obs),), generator=gen)
            torch.testing.assert_close(ours[0], theirs.distribution.logits)
        else:
            actions = 2.0 * torch.randn(len(obs), policy.action_dim, generator=gen)
            torch.testing.assert_close(ours[0], theirs.distribution.mean)
            torch.testing.assert_close(ours[1], theirs.distribution.stddev.log())
        torch.testing.assert_close(policy.log_prob(ours, actions), theirs.log_prob(actions))


# -- SB3 network = metarl network ------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize(("env_id", "hidden"), [(CHEETAH, [32, 32]), (TABULAR, [16, 8, 4])])
def test_kwargs_give_metarl_parameters(env_id, hidden, activation):
    cfg = PolicyConfig(hidden_sizes=hidden, activation=activation, init_log_std=-0.5)
    env = gymnasium.make(env_id)
    model = sb3_model("ppo", env, sb3_policy_kwargs(cfg))
    ours = make_policy(env.observation_space, env.action_space, hidden, activation, -0.5)
    names = sb3_parameter_names(model)
    theirs = dict(model.policy.named_parameters())
    assert list(names) == [name for name, _ in ours.named_parameters()]
    assert {n: theirs[s].shape for n, s in names.items()} == {
        n: p.shape for n, p in ours.named_parameters()
    }
    acts = [m for m in model.policy.mlp_extractor.policy_net if not isinstance(m, nn.Linear)]
    assert [type(m) for m in acts] == [{"relu": nn.ReLU, "tanh": nn.Tanh}[activation]] * len(hidden)
    vf_widths = [m.out_features for m in model.policy.mlp_extractor.value_net[::2]]
    assert vf_widths == hidden  # a value net of its own, nothing shared
    if not ours.discrete:
        torch.testing.assert_close(model.policy.log_std.detach(), ours.log_std.detach())


def test_kwargs_match_the_experiments_policy():
    """The policy ``build`` makes (``RLExperiment.policy``) loads SB3's converted actor as is."""
    cfg = small_config()
    exp = build(cfg)
    try:
        env = sb3_env(gymnasium.make(cfg.env.id), cfg.sampler)
        model = sb3_model("ppo", env, sb3_policy_kwargs(cfg.policy))
        model.learn(64)
        policy = policy_from_sb3(
            model,
            observation_space=exp.env.observation_space,
            action_space=exp.env.action_space,
            sampler=cfg.sampler,
        )
        exp.policy.load_state_dict(policy.state_dict())  # strict: same names and shapes
        assert_same_distribution(model.policy, exp.policy, 2)
    finally:
        exp.close()


# -- SB3 -> metarl after training --------------------------------------------------------------
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize(
    ("env_id", "sampler"), [(NAV, RESCALE), (CHEETAH, SamplerConfig()), (TABULAR, SamplerConfig())]
)
def test_trained_policy_converts_exactly(algo, activation, env_id, sampler):
    cfg = PolicyConfig(hidden_sizes=[32, 32], activation=activation)
    raw = gymnasium.make(env_id)
    model = sb3_model(algo, sb3_env(gymnasium.make(env_id), sampler), sb3_policy_kwargs(cfg))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(128)
    after = model.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in sb3_parameter_names(model).values())
    state = torch.random.get_rng_state()
    policy = policy_from_sb3(
        model,
        observation_space=raw.observation_space,
        action_space=raw.action_space,
        sampler=sampler,
    )
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert policy.activation == activation
    assert [layer.out_features for layer in policy.layers[:-1]] == [32, 32]
    assert_same_distribution(model.policy, policy, raw.observation_space.shape[0])


def test_rescaled_navigation_acts_like_metarls_sampler():
    """SB3 on ``sb3_env`` gives the env what metarl's sampler gives it for the same action."""
    from metarl.rl.sampling.actions import ActionMap

    env = gymnasium.make(NAV)
    space = sb3_action_space(env.action_space, RESCALE)
    np.testing.assert_array_equal(space.low, [-1, -1])
    scaled = sb3_action_space(env.action_space, SamplerConfig(action_scale=10.0))
    np.testing.assert_allclose(scaled.high, [1.0, 1.0], rtol=1e-6)
    actions = np.array([[-3.0, 0.5], [0.2, 2.0]], dtype=np.float32)
    low, high = env.action_space.low, env.action_space.high
    for sampler in (RESCALE, SamplerConfig(action_scale=10.0)):
        wrapped = sb3_env(gymnasium.make(NAV), sampler)
        target = sb3_action_space(env.action_space, sampler)
        action_map = ActionMap(sampler.clip_actions, sampler.rescale_actions, sampler.action_scale)
        for a in actions:
            sb3_sends = wrapped.action(np.clip(a, target.low, target.high))  # SB3 clips, then wraps
            np.testing.assert_allclose(sb3_sends, action_map.to_env(a, low, high), rtol=1e-6)
    assert sb3_env(env) is env


# -- metarl -> SB3 --------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", [CHEETAH, TABULAR])
def test_load_into_sb3(env_id):
    env = gymnasium.make(env_id)
    cfg = PolicyConfig(hidden_sizes=[16, 16], activation="tanh", init_log_std=0.3)
    policy = make_policy(
        env.observation_space,
        env.action_space,
        cfg.hidden_sizes,
        cfg.activation,
        cfg.init_log_std,
        torch.Generator().manual_seed(3),
    )
    model = sb3_model("trpo", env, sb3_policy_kwargs(cfg))
    value_net = {k: v.clone() for k, v in model.policy.value_net.state_dict().items()}
    load_into_sb3(policy, model)
    assert_same_distribution(model.policy, policy, env.observation_space.shape[0])
    for k, v in model.policy.value_net.state_dict().items():
        assert torch.equal(v, value_net[k])
    back = policy_from_sb3(
        model, observation_space=env.observation_space, action_space=env.action_space
    )
    for (name, p), (name2, q) in zip(policy.named_parameters(), back.named_parameters()):
        assert name == name2 and torch.equal(p, q)


def test_load_into_sb3_refuses_other_networks():
    env = gymnasium.make(CHEETAH)
    model = sb3_model("ppo", env, sb3_policy_kwargs({"hidden_sizes": [16, 16]}))
    wider = make_policy(env.observation_space, env.action_space, [16, 32], "relu")
    with pytest.raises(ValueError, match=r"layers\.1\.weight is \(32, 16\)"):
        load_into_sb3(wider, model)
    with pytest.raises(ValueError, match="uses tanh, SB3's actor relu"):
        load_into_sb3(make_policy(env.observation_space, env.action_space, [16, 16], "tanh"), model)
    discrete = make_policy(env.observation_space, gymnasium.spaces.Discrete(6), [16, 16])
    with pytest.raises(ValueError, match="categorical, SB3's actor is Gaussian"):
        load_into_sb3(discrete, model)


# -- refusals ---------------------------------------------------------------------------------
def test_kwargs_refuse_what_sb3_cannot_build():
    class LayerNormPolicyConfig(PolicyConfig):
        layer_norm: bool = False

    kwargs = sb3_policy_kwargs(LayerNormPolicyConfig(init_seed=4))  # default: fine
    assert kwargs["net_arch"] == {"pi": [100, 100], "vf": [100, 100]}
    assert kwargs["activation_fn"] is nn.ReLU and kwargs["log_std_init"] == 0.0
    with pytest.raises(ValueError, match="policy.layer_norm = True has no Stable-Baselines3"):
        sb3_policy_kwargs(LayerNormPolicyConfig(layer_norm=True))
    with pytest.raises(ValueError, match="activation"):
        sb3_policy_kwargs({"activation": "elu"})
    with pytest.raises(ValueError, match="hidden_size"):
        sb3_policy_kwargs({"hidden_size": [64]})


class LinearFeatures(BaseFeaturesExtractor):
    def __init__(self, observation_space):
        super().__init__(observation_space, 8)
        self.linear = nn.Linear(observation_space.shape[0], 8)

    def forward(self, obs):
        return self.linear(obs)


def convert(model, env_id: str = NAV, sampler: SamplerConfig | None = None):
    env = gymnasium.make(env_id)
    return policy_from_sb3(
        model,
        observation_space=env.observation_space,
        action_space=env.action_space,
        sampler=sampler,
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"activation_fn": nn.ELU},
            r"activation ELU; metarl's policies support nn\.ReLU, nn\.Tanh",
        ),
        ({"features_extractor_class": LinearFeatures}, "features extractor is LinearFeatures"),
        ({"net_arch": [16]}, None),  # a list is separate pi / vf layers since SB3 1.8: fine
        ({"share_features_extractor": False}, None),  # FlattenExtractor has no parameters
    ],
)
def test_refuses_other_networks(overrides, match):
    kwargs = {**sb3_policy_kwargs({"hidden_sizes": [16]}), **overrides}
    model = sb3_model("ppo", gymnasium.make(NAV), kwargs)
    if match is None:
        assert_same_distribution(model.policy, convert(model), 2)
    else:
        with pytest.raises(ValueError, match=match):
            convert(model)


def test_refuses_gsde_and_normalised_observations():
    kwargs = sb3_policy_kwargs({"hidden_sizes": [16]})
    with pytest.raises(ValueError, match="gSDE"):
        convert(sb3_model("ppo", gymnasium.make(NAV), kwargs, use_sde=True))
    venv = VecNormalize(DummyVecEnv([lambda: gymnasium.make(NAV)]))
    with pytest.raises(ValueError, match="VecNormalize"):
        convert(sb3_model("ppo", venv, kwargs))
    rewards_only = VecNormalize(DummyVecEnv([lambda: gymnasium.make(NAV)]), norm_obs=False)
    convert(sb3_model("ppo", rewards_only, kwargs))  # reward scaling does not touch the policy


def test_refuses_other_policies():
    from sb3_contrib import RecurrentPPO

    model = RecurrentPPO("MlpLstmPolicy", gymnasium.make(NAV), n_steps=64, device="cpu", seed=0)
    with pytest.raises(ValueError, match="RecurrentActorCriticPolicy is not supported"):
        convert(model)


def test_refuses_other_spaces():
    kwargs = sb3_policy_kwargs({"hidden_sizes": [16]})
    nav = sb3_model("ppo", gymnasium.make(NAV), kwargs)
    assert_same_distribution(nav.policy, policy_from_sb3(nav), 2)  # no spaces: nothing to check
    with pytest.raises(ValueError, match="pass the metarl env's too"):
        policy_from_sb3(nav, sampler=RESCALE)
    with pytest.raises(ValueError, match="trained on observations"):
        convert(nav, CHEETAH)
    with pytest.raises(ValueError, match=r"train SB3 on sb3_env\(env, cfg.sampler\)"):
        convert(nav, NAV, RESCALE)  # trained on [-0.1, 0.1], metarl's policy acts in [-1, 1]
    with pytest.raises(ValueError, match="clip_actions: true"):
        convert(nav, NAV, SamplerConfig(clip_actions=False))
    tabular = sb3_model("ppo", gymnasium.make(TABULAR), kwargs)
    with pytest.raises(ValueError, match=r"acts in Discrete\(5\), the metarl env in Discrete\(4\)"):
        policy_from_sb3(
            tabular,
            observation_space=gymnasium.make(TABULAR).observation_space,
            action_space=gymnasium.spaces.Discrete(4),
        )
    rescaled = sb3_model("ppo", sb3_env(gymnasium.make(NAV), RESCALE), kwargs)
    with pytest.raises(ValueError, match="acts in Box"):
        convert(rescaled)  # the other way round
    convert(rescaled, NAV, RESCALE)
