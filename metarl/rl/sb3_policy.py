"""Moving a policy between Stable-Baselines3 and metarl (the MAML paper's "pretrained" baseline).

The baseline trains one policy on the whole task distribution with SB3 (PPO, A2C or sb3-contrib's
TRPO), with the same network as the meta-learned policy, converts it, and adapts it with metarl's
own inner loop. Four pieces::

    kwargs = sb3_policy_kwargs(cfg.policy)                # SB3's actor = metarl's policy
    env = sb3_env(gymnasium.make(cfg.env.id), cfg.sampler) # SB3's actions = metarl's actions
    model = PPO("MlpPolicy", env, policy_kwargs=kwargs, seed=0).learn(1_000_000)
    policy = policy_from_sb3(model, observation_space=exp.env.observation_space,
                             action_space=exp.env.action_space, sampler=cfg.sampler)
    exp.policy.load_state_dict(policy.state_dict())      # exp = metarl.rl.build(cfg)

:func:`load_into_sb3` goes the other way (a meta-learned policy fine-tuned by SB3).

What "the same policy" means here: on every observation the converted policy's action
distribution equals SB3's (``ActorCriticPolicy.get_distribution``), to float32 rounding, and the
env executes the same action for the same sample. That holds for SB3's on-policy
``ActorCriticPolicy`` with a ``FlattenExtractor`` on a flat ``Box`` observation, an
``MlpExtractor`` of ReLU or Tanh layers, and a diagonal Gaussian (``Box`` actions, state-
independent ``log_std``) or categorical (``Discrete``) head, trained without gSDE, without
squashing and without ``VecNormalize`` observation statistics (which live outside the policy).
Anything else is refused with a ``ValueError`` that names it. The value network is not part of a
metarl policy: it is dropped by :func:`policy_from_sb3` and left as it is by
:func:`load_into_sb3`.

Actions: SB3 steps the env with ``clip(a, low, high)`` on the action space it was trained on;
metarl's sampler with ``clip(map(a / action_scale), low, high)`` (:mod:`.sampling.actions`).
:func:`sb3_env` wraps the env in Gymnasium's ``RescaleAction`` so that both give the env the same
action (clipping commutes with the increasing affine map); :func:`sb3_action_space` is the action
space SB3 must therefore have seen, and :func:`policy_from_sb3` checks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

from .config import PolicyConfig, SamplerConfig
from .policies import OBS_CLIP, CategoricalMLPPolicy, GaussianMLPPolicy, Policy

#: metarl's ``policy.activation`` -> SB3's ``activation_fn``
ACTIVATION_FNS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}

#: ``PolicyConfig`` fields with an SB3 counterpart in :func:`sb3_policy_kwargs`
_TRANSLATED = ("hidden_sizes", "activation", "init_log_std")
#: ``PolicyConfig`` fields that do not shape the network (SB3's initial weights come from the
#: algorithm's ``seed``; the converted policy's weights are SB3's trained ones)
_NOT_ARCHITECTURE = ("init_seed",)

SB3Model = BaseAlgorithm | ActorCriticPolicy


def sb3_policy_kwargs(
    policy_cfg: PolicyConfig | Mapping[str, Any], *, ortho_init: bool = True
) -> dict[str, Any]:
    """``policy_kwargs`` for SB3's on-policy ``MlpPolicy`` (PPO, A2C, TRPO) whose actor is
    metarl's policy for ``policy_cfg``: the same layers, activation and initial log-std.

    The value network gets the same hidden sizes, separately (``net_arch=dict(pi=..., vf=...)``;
    SB3 >= 1.8 shares no layers). ``ortho_init`` defaults to SB3's own choice (orthogonal
    weights, gain 0.01 on the action head): PPO's tuned hyper-parameters assume it, and the
    initialisation is not part of the network, since the weights are trained before conversion.
    ``init_seed`` is accepted and has no counterpart (seed the SB3 algorithm instead); any other
    field away from its default raises ``ValueError``.
    """
    cfg = (
        policy_cfg
        if isinstance(policy_cfg, PolicyConfig)
        else PolicyConfig.model_validate(dict(policy_cfg))
    )
    for name, field in type(cfg).model_fields.items():
        if name in _TRANSLATED or name in _NOT_ARCHITECTURE:
            continue
        value = getattr(cfg, name)
        if value != field.get_default(call_default_factory=True):
            raise ValueError(
                f"policy.{name} = {value!r} has no Stable-Baselines3 equivalent, so SB3 cannot "
                f"train the same network; remove policy.{name} (or teach "
                "metarl.rl.sb3_policy to translate it)"
            )
    hidden = [int(h) for h in cfg.hidden_sizes]
    return {
        "net_arch": {"pi": hidden, "vf": list(hidden)},
        "activation_fn": ACTIVATION_FNS[cfg.activation],
        "log_std_init": float(cfg.init_log_std),
        "ortho_init": ortho_init,
        "squash_output": False,
    }


def sb3_action_space(
    action_space: spaces.Space, sampler: SamplerConfig | None = None
) -> spaces.Space:
    """The action space in which metarl's policy acts under ``sampler`` (default: the schema's
    defaults, clip only), i.e. the one SB3 must train on: ``Discrete`` spaces as they are; a
    ``Box`` mapped back through ``action_scale`` and ``rescale_actions``."""
    sampler = SamplerConfig() if sampler is None else sampler
    if isinstance(action_space, spaces.Discrete):
        return action_space
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"unsupported action space {action_space}; use Box or Discrete")
    if not sampler.clip_actions:
        raise ValueError(
            "SB3 clips every Box action to the bounds before stepping the env, metarl's sampler "
            "with clip_actions: false does not; set sampler.clip_actions: true"
        )
    scale = float(sampler.action_scale)
    if not sampler.rescale_actions and scale == 1.0:
        return action_space
    if sampler.rescale_actions:
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(
                f"sampler.rescale_actions needs finite action bounds, got {action_space}"
            )
        low = np.full(action_space.shape, -scale)
        high = np.full(action_space.shape, scale)
    else:
        low, high = scale * action_space.low, scale * action_space.high
    dtype = action_space.dtype
    return spaces.Box(low.astype(dtype), high.astype(dtype), action_space.shape, dtype)


def sb3_env(env: gymnasium.Env, sampler: SamplerConfig | None = None) -> gymnasium.Env:
    """``env`` as SB3 should see it so that its actions reach the env as metarl's sampler's
    would: unchanged for ``Discrete`` actions and the identity action map, else wrapped in
    ``RescaleAction`` onto :func:`sb3_action_space`."""
    target = sb3_action_space(env.action_space, sampler)
    if target is env.action_space:
        return env
    return gymnasium.wrappers.RescaleAction(env, target.low, target.high)


def standardized_vec_env(venv: Any, policy: Policy) -> Any:
    """``venv`` with its observations standardised as ``policy`` standardises them
    (``policy.normalize_obs``: ``clip((obs - mean) / std, +-OBS_CLIP)`` with its fixed
    statistics), by SB3's own ``VecNormalize``, frozen; ``venv`` unchanged for a policy that
    reads raw observations. SB3 trained on it holds the actor :func:`policy_from_sb3` converts,
    to which the statistics are then added (:meth:`Policy.set_obs_normalization`)."""
    from stable_baselines3.common.vec_env import VecNormalize

    if not policy.normalizes_obs:
        return venv
    eps = 1e-8  # VecNormalize divides by sqrt(var + eps): var = std^2 - eps divides by std
    out = VecNormalize(
        venv, training=False, norm_obs=True, norm_reward=False, clip_obs=OBS_CLIP, epsilon=eps
    )
    out.obs_rms.mean = policy.obs_mean.double().cpu().numpy()
    out.obs_rms.var = policy.obs_std.double().cpu().numpy() ** 2 - eps
    return out


def sb3_parameter_names(sb3: SB3Model) -> dict[str, str]:
    """``{metarl parameter name: SB3 parameter name}`` of the actor, in the order of metarl's
    ``named_parameters()`` (``log_std``; ``layers.{i}`` <- ``mlp_extractor.policy_net.{j}``, the
    last one <- ``action_net``); raises ``ValueError`` where SB3's actor is not a metarl policy."""
    return _actor(_policy_of(sb3))[0]


def policy_from_sb3(
    sb3: SB3Model,
    *,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    sampler: SamplerConfig | None = None,
) -> GaussianMLPPolicy | CategoricalMLPPolicy:
    """The metarl policy with SB3's actor: the same action distribution on every observation.

    ``observation_space`` / ``action_space``: the metarl env's (``RLExperiment.env``), checked
    against SB3's when given (pass them unless the SB3 env is built to match, as by
    :func:`sb3_env`); ``sampler``: the metarl run's sampler settings (default: the schema's),
    through which ``action_space`` is compared (:func:`sb3_action_space`). The result lives on
    the CPU in float32, and building it leaves torch's global random state as it was.
    """
    policy = _policy_of(sb3)
    names, activation = _actor(policy)
    if observation_space is not None:
        _check_observations(policy, observation_space)
    if action_space is not None:
        _check_actions(policy, sb3_action_space(action_space, sampler))
    elif sampler is not None:
        raise ValueError("sampler is used to check action_space; pass the metarl env's too")
    sb3_params = dict(policy.named_parameters())
    state = {
        ours: sb3_params[theirs].detach().to("cpu", torch.float32) for ours, theirs in names.items()
    }
    linear = [state[f"layers.{i}.weight"] for i in range(_num_layers(names))]
    obs_dim, out_dim = int(linear[0].shape[1]), int(linear[-1].shape[0])
    hidden = [int(w.shape[0]) for w in linear[:-1]]
    init = torch.Generator()  # throwaway initial weights (SB3's replace them), not global RNG
    if "log_std" in names:
        out: Policy = GaussianMLPPolicy(obs_dim, out_dim, hidden, activation, generator=init)
    else:
        out = CategoricalMLPPolicy(obs_dim, out_dim, hidden, activation, generator=init)
    out.load_state_dict(state)
    return out


def load_into_sb3(policy: GaussianMLPPolicy | CategoricalMLPPolicy, sb3: SB3Model) -> None:
    """Copy a metarl policy into SB3's actor in place (e.g. to fine-tune a meta-learned policy
    with SB3). The value network and the optimizer's state are left as they are; build the SB3
    model with :func:`sb3_policy_kwargs` on :func:`sb3_env`, so its spaces are the policy's."""
    if policy.normalizes_obs:
        raise ValueError(
            "the metarl policy standardises its observations (policy.normalize_obs), SB3's "
            "actor reads them raw; train without policy.normalize_obs to hand it to SB3"
        )
    target = _policy_of(sb3)
    names, activation = _actor(target)
    if policy.discrete != ("log_std" not in names):
        kinds = ("categorical", "Gaussian")
        raise ValueError(
            f"the metarl policy is {kinds[not policy.discrete]}, SB3's actor is "
            f"{kinds['log_std' in names]}; build them on the same action space"
        )
    if policy.activation != activation:
        raise ValueError(
            f"the metarl policy uses {policy.activation}, SB3's actor {activation}; build SB3 "
            "with sb3_policy_kwargs(cfg.policy)"
        )
    ours = dict(policy.named_parameters())
    theirs = dict(target.named_parameters())
    if set(ours) != set(names):
        raise ValueError(
            f"the metarl policy has parameters {sorted(ours)}, SB3's actor maps to "
            f"{sorted(names)}; build SB3 with sb3_policy_kwargs(cfg.policy)"
        )
    for name, sb3_name in names.items():
        if ours[name].shape != theirs[sb3_name].shape:
            raise ValueError(
                f"{name} is {tuple(ours[name].shape)} in the metarl policy but {sb3_name} is "
                f"{tuple(theirs[sb3_name].shape)} in SB3's; build SB3 with "
                "sb3_policy_kwargs(cfg.policy) on the same env"
            )
    with torch.no_grad():
        for name, sb3_name in names.items():
            theirs[sb3_name].copy_(ours[name])


# -- checks --------------------------------------------------------------------------------------
def _policy_of(sb3: SB3Model) -> ActorCriticPolicy:
    """The policy of an SB3 algorithm (refusing observation normalisation) or the policy itself."""
    if isinstance(sb3, BaseAlgorithm):
        vec_normalize = sb3.get_vec_normalize_env()
        if vec_normalize is not None and vec_normalize.norm_obs:
            raise ValueError(
                "the SB3 model normalises observations with VecNormalize, whose statistics are "
                "not part of its policy; train with VecNormalize(norm_obs=False) or without it"
            )
        sb3 = sb3.policy
    if type(sb3) is not ActorCriticPolicy:
        raise ValueError(
            f"{type(sb3).__name__} is not supported: only SB3's on-policy ActorCriticPolicy "
            "('MlpPolicy' of PPO, A2C and sb3_contrib TRPO) has metarl's network (subclasses "
            "add LSTMs or action masks, off-policy actors squash their actions)"
        )
    return sb3


def _actor(policy: ActorCriticPolicy) -> tuple[dict[str, str], str]:
    """Parameter names (metarl -> SB3) and activation of an actor equal to a metarl policy."""
    if policy.use_sde:
        raise ValueError(
            "the SB3 policy uses gSDE (state-dependent exploration noise), metarl's Gaussian "
            "has a state-independent log-std; train with use_sde=False"
        )
    if policy.squash_output:
        raise ValueError("the SB3 policy squashes its actions with tanh; use squash_output=False")
    extractor = policy.pi_features_extractor
    if type(extractor) is not FlattenExtractor:
        raise ValueError(
            f"the SB3 policy's features extractor is {type(extractor).__name__}: layers before "
            "the MLP that metarl's policy lacks; use the default FlattenExtractor"
        )
    obs_space = policy.observation_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"metarl policies need a flat Box observation space, got {obs_space}")
    activation = _activation_name(policy.activation_fn)
    if type(policy.mlp_extractor) is not MlpExtractor:
        raise ValueError(
            f"the SB3 policy's mlp_extractor is {type(policy.mlp_extractor).__name__}; only "
            "SB3's MlpExtractor is supported"
        )
    names: dict[str, str] = {}
    dist = type(policy.action_dist)
    if dist is DiagGaussianDistribution:
        names["log_std"] = "log_std"  # first, as in metarl's named_parameters()
    elif dist is not CategoricalDistribution:
        raise ValueError(
            f"the SB3 policy's action distribution is {dist.__name__}; metarl has a diagonal "
            "Gaussian (Box actions) and a categorical (Discrete actions)"
        )
    modules = list(policy.mlp_extractor.policy_net.named_children())
    for k in range(0, len(modules), 2):
        (lin_name, lin), act = modules[k], modules[k + 1 : k + 2]
        if type(lin) is not nn.Linear or not act or _activation_name(type(act[0][1])) != activation:
            layout = [type(m).__name__ for _, m in modules]
            raise ValueError(
                f"the SB3 policy net is {layout}; metarl's policy alternates Linear and one "
                f"{ACTIVATION_FNS[activation].__name__}"
            )
        i = k // 2
        names[f"layers.{i}.weight"] = f"mlp_extractor.policy_net.{lin_name}.weight"
        names[f"layers.{i}.bias"] = f"mlp_extractor.policy_net.{lin_name}.bias"
    if type(policy.action_net) is not nn.Linear:
        raise ValueError(f"the SB3 action head is {type(policy.action_net).__name__}, not Linear")
    last = len(modules) // 2
    names[f"layers.{last}.weight"] = "action_net.weight"
    names[f"layers.{last}.bias"] = "action_net.bias"
    return names, activation


def _activation_name(fn: type[nn.Module]) -> str:
    for name, cls in ACTIVATION_FNS.items():
        if fn is cls:
            return name
    allowed = ", ".join(f"nn.{c.__name__}" for c in ACTIVATION_FNS.values())
    raise ValueError(
        f"the SB3 policy uses the activation {getattr(fn, '__name__', fn)}; metarl's policies "
        f"support {allowed} (set policy_kwargs activation_fn accordingly)"
    )


def _num_layers(names: Mapping[str, str]) -> int:
    return sum(1 for name in names if name.endswith(".weight"))


def _check_observations(policy: ActorCriticPolicy, observation_space: spaces.Space) -> None:
    obs = policy.observation_space
    if not isinstance(observation_space, spaces.Box) or observation_space.shape != obs.shape:
        raise ValueError(
            f"the SB3 policy was trained on observations {obs}, the metarl env has "
            f"{observation_space}; train SB3 on the same env"
        )


def _check_actions(policy: ActorCriticPolicy, action_space: spaces.Space) -> None:
    """SB3's action space against metarl's policy's (already through the action map)."""
    act = policy.action_space
    if isinstance(action_space, spaces.Discrete):
        if not isinstance(act, spaces.Discrete) or (act.n, act.start) != (
            action_space.n,
            action_space.start,
        ):
            raise ValueError(
                f"the SB3 policy acts in {act}, the metarl env in {action_space}; train SB3 on "
                "the same env"
            )
        return
    same = (
        isinstance(act, spaces.Box)
        and act.shape == action_space.shape
        and np.allclose(act.low, action_space.low, rtol=1e-6, atol=0)
        and np.allclose(act.high, action_space.high, rtol=1e-6, atol=0)
    )
    if not same:
        raise ValueError(
            f"the SB3 policy acts in {act}, but with these sampler settings metarl's policy "
            f"acts in {action_space}, so the same action would mean different env actions; "
            "train SB3 on sb3_env(env, cfg.sampler)"
        )


__all__ = [
    "ACTIVATION_FNS",
    "load_into_sb3",
    "policy_from_sb3",
    "sb3_action_space",
    "sb3_env",
    "sb3_parameter_names",
    "sb3_policy_kwargs",
]
