"""Policies called functionally, so one call evaluates a whole meta-batch of adapted policies.

Both policies are ``nn.Module`` s whose ``forward(obs)`` returns the parameters of the action
distribution. They are meant to be called through :meth:`Policy.dist` (``functional_call`` with
a parameter dict) and accept two layouts:

* shared parameters (``weight [out, in]``) on observations ``[..., obs]``;
* stacked per-task parameters (``weight [tasks, out, in]``) on observations
  ``[tasks, ..., obs]``: task ``i``'s observations go through task ``i``'s weights, with one batched
  matmul per layer. This is how the sampler runs the adapted policies of a meta-batch at once.

No ``torch.distributions`` objects are built: log-probabilities and KL divergences are written
out, which keeps them usable under ``torch.func.vmap`` and cheap to differentiate three times
(the MAML-TRPO Hessian-vector product differentiates the KL through the inner gradient step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
#: standardised observations are clipped to +-OBS_CLIP (as Stable-Baselines3's VecNormalize)
OBS_CLIP = 10.0
Dist = tuple[Tensor, ...]


def batched_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x @ weight.T + bias`` for shared ``weight [out, in]`` or stacked ``[tasks, out, in]``."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    tasks, out_dim = weight.shape[0], weight.shape[1]
    if x.shape[0] != tasks:
        raise ValueError(
            f"stacked parameters for {tasks} tasks need observations shaped [tasks, ...], "
            f"got {tuple(x.shape)}"
        )
    flat = x.reshape(tasks, -1, x.shape[-1])
    y = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return y.reshape(*x.shape[:-1], out_dim)


class Policy(nn.Module):
    """Shared MLP trunk; subclasses define the head and the distribution maths."""

    discrete: bool = False

    def __init__(
        self,
        obs_dim: int,
        out_dim: int,
        hidden_sizes: Sequence[int],
        activation: str,
        generator: torch.Generator | None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.obs_dim = obs_dim
        self.activation = activation
        sizes = [obs_dim, *hidden_sizes, out_dim]
        # skip_init: nn.Linear's own initialisation would draw from torch's global generator
        self.layers = nn.ModuleList(
            nn.utils.skip_init(nn.Linear, a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )
        with torch.no_grad():  # Xavier-uniform weights, zero biases (as pytorch-maml-rl)
            for layer in self.layers:
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                layer.bias.zero_()

    def set_obs_normalization(self, mean: Tensor, std: Tensor) -> None:
        """Standardise every observation the policy reads as ``clip((obs - mean) / std,
        -OBS_CLIP, OBS_CLIP)`` with these fixed statistics (``policy.normalize_obs``), kept as
        buffers so they are saved and loaded with the state dict; they are not parameters, so no
        gradient step moves them."""
        if mean.shape != (self.obs_dim,) or std.shape != (self.obs_dim,):
            raise ValueError(
                f"observation statistics must have shape ({self.obs_dim},), got "
                f"{tuple(mean.shape)} and {tuple(std.shape)}"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError("observation statistics must be finite, with a positive std")
        self.register_buffer("obs_mean", mean.detach().float().clone())
        self.register_buffer("obs_std", std.detach().float().clone())

    @property
    def normalizes_obs(self) -> bool:
        """Whether :meth:`set_obs_normalization` gave the policy observation statistics."""
        return "obs_mean" in self._buffers

    def standardized(self, obs: Tensor) -> Tensor:
        """``(obs - mean) / std`` before the clip (the policy must normalise observations;
        diagnostics: which inputs the clip hides)."""
        return (obs - self.obs_mean) / self.obs_std

    def normalize(self, obs: Tensor) -> Tensor:
        """``obs`` standardised and clipped (see :meth:`set_obs_normalization`), or unchanged
        without statistics."""
        if not self.normalizes_obs:
            return obs
        return self.standardized(obs).clamp(-OBS_CLIP, OBS_CLIP)

    def trunk(self, obs: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        x = self.normalize(obs)
        for i, layer in enumerate(self.layers):
            x = batched_linear(x, layer.weight, layer.bias)
            if i < len(self.layers) - 1:
                x = act(x)
        return x

    def head_names(self) -> tuple[str, ...]:
        """The output layer's parameters (what ANIL adapts; the log-std is not among them)."""
        last = len(self.layers) - 1
        return (f"layers.{last}.weight", f"layers.{last}.bias")

    def hidden_preactivations(self, params: Mapping[str, Tensor], obs: Tensor) -> list[Tensor]:
        """The input of the activation of every hidden layer, ``[..., width]`` each, for shared
        ``params`` (diagnostics: units that never or always fire)."""
        act = ACTIVATIONS[self.activation]
        out, x = [], self.normalize(obs)
        for i in range(len(self.layers) - 1):
            pre = F.linear(x, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
            out.append(pre)
            x = act(pre)
        return out

    def dist(self, params: Mapping[str, Tensor], obs: Tensor) -> Dist:
        """Distribution parameters of the policy given by ``params`` (shared or stacked)."""
        return torch.func.functional_call(self, dict(params), (obs,))

    # subclasses -----------------------------------------------------------------------------
    def log_prob(self, dist: Dist, actions: Tensor) -> Tensor:
        raise NotImplementedError

    def kl(self, old: Dist, new: Dist) -> Tensor:
        """Per-sample ``KL(old || new)``."""
        raise NotImplementedError

    def kl_output_hessian(self, dist: Dist) -> Dist:
        """A diagonal metric ``M`` per output tensor with ``J^T M J`` the Hessian of
        ``KL(dist || new)`` at ``new = dist`` in whatever produced the outputs (``J`` their
        Jacobian): the Fisher metric in distribution-parameter space (see subclasses)."""
        raise NotImplementedError

    def sample_actions(self, dist: Dist, rng: np.random.Generator) -> np.ndarray:
        """Actions drawn with noise from the numpy generator ``rng`` (one batch per call)."""
        raise NotImplementedError


class GaussianMLPPolicy(Policy):
    """Diagonal Gaussian with an MLP mean and a learned, state-independent log-std.

    MAML paper: hidden sizes (100, 100), ReLU, log-std initialised to 0.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "relu",
        init_log_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(obs_dim, action_dim, hidden_sizes, activation, generator)
        self.action_dim = action_dim
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def forward(self, obs: Tensor) -> Dist:
        mean = self.trunk(obs)
        log_std = self.log_std
        if log_std.dim() == 2:  # stacked [tasks, act] -> [tasks, 1, ..., act]
            log_std = log_std.reshape(log_std.shape[0], *[1] * (mean.dim() - 2), -1)
        return mean, log_std.expand_as(mean)

    def log_prob(self, dist: Dist, actions: Tensor) -> Tensor:
        mean, log_std = dist
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def kl(self, old: Dist, new: Dist) -> Tensor:
        m0, s0 = old
        m1, s1 = new
        var0, var1 = torch.exp(2 * s0), torch.exp(2 * s1)
        return (s1 - s0 + (var0 + (m0 - m1).pow(2)) / (2 * var1) - 0.5).sum(-1)

    def kl_output_hessian(self, dist: Dist) -> Dist:
        _, log_std = dist  # mean: 1 / sigma^2; log-std: 2; no cross terms at new = old
        return torch.exp(-2 * log_std), torch.full_like(log_std, 2.0)

    def sample_actions(self, dist: Dist, rng: np.random.Generator) -> np.ndarray:
        mean, log_std = (t.numpy() for t in dist)
        noise = rng.standard_normal(mean.shape, dtype=np.float32)
        return mean + np.exp(log_std) * noise


class CategoricalMLPPolicy(Policy):
    """Categorical over ``num_actions`` with MLP logits."""

    discrete = True

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "relu",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(obs_dim, num_actions, hidden_sizes, activation, generator)
        self.num_actions = num_actions

    def forward(self, obs: Tensor) -> Dist:
        return (torch.log_softmax(self.trunk(obs), -1),)

    def log_prob(self, dist: Dist, actions: Tensor) -> Tensor:
        (logp,) = dist
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def kl(self, old: Dist, new: Dist) -> Tensor:
        (lp0,), (lp1,) = old, new
        return (torch.exp(lp0) * (lp0 - lp1)).sum(-1)

    def kl_output_hessian(self, dist: Dist) -> Dist:
        # in log-probabilities: diag(p); through log_softmax this gives diag(p) - p p^T in logits
        return (torch.exp(dist[0]),)

    def sample_actions(self, dist: Dist, rng: np.random.Generator) -> np.ndarray:
        probs = torch.exp(dist[0]).double().numpy()
        cdf = np.cumsum(probs, -1)
        u = rng.random(probs.shape[:-1])[..., None] * cdf[..., -1:]
        return np.minimum((u > cdf).sum(-1), probs.shape[-1] - 1).astype(np.int64)


def make_policy(
    observation_space,
    action_space,
    hidden_sizes: Sequence[int] = (100, 100),
    activation: str = "relu",
    init_log_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> Policy:
    """Gaussian policy for a ``Box`` action space, categorical for ``Discrete``.

    Weights are Xavier-uniform and biases zero."""
    from gymnasium import spaces

    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"policies need a flat Box observation space, got {observation_space}")
    obs_dim = int(observation_space.shape[0])
    if isinstance(action_space, spaces.Box):
        return GaussianMLPPolicy(
            obs_dim,
            int(np.prod(action_space.shape)),
            hidden_sizes,
            activation,
            init_log_std,
            generator,
        )
    if isinstance(action_space, spaces.Discrete):
        return CategoricalMLPPolicy(
            obs_dim, int(action_space.n), hidden_sizes, activation, generator
        )
    raise ValueError(f"unsupported action space {action_space}; use Box or Discrete")
