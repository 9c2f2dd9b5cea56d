"""Discounted returns and generalised advantage estimation on padded ``[..., H]`` batches.

Steps where ``mask`` is 0 (after an episode ended) contribute nothing and get zero returns and
advantages; the value after the last valid step is taken to be 0 (no bootstrap at truncation, as
in the MAML code and pytorch-maml-rl).
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``G_t = r_t + gamma * G_{t+1}`` within each episode; shapes ``[..., H]``."""
    rewards = rewards * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running * mask[..., t]
        out[..., t] = running
    return out * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, gae_lambda: float) -> Tensor:
    """GAE(gamma, lambda) advantages; ``values`` are the baseline's ``V(s_t)``, shapes ``[..., H]``.

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)``, ``A_t = delta_t + gamma * lambda * A_{t+1}``,
    with ``V`` and ``A`` zero past the end of the episode.
    """
    values = values * mask
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], -1)
    deltas = (rewards + gamma * next_values - values) * mask
    out = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[..., 0])
    for t in range(deltas.shape[-1] - 1, -1, -1):
        running = deltas[..., t] + gamma * gae_lambda * running
        out[..., t] = running
    return out * mask


def normalize_advantages(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Per task (leading dim) mean 0 and std 1 over the valid steps of ``adv [tasks, ...]``."""
    dims = tuple(range(1, adv.dim()))
    count = mask.sum(dims, keepdim=True).clamp_min(1.0)
    mean = (adv * mask).sum(dims, keepdim=True) / count
    var = ((adv - mean).pow(2) * mask).sum(dims, keepdim=True) / count
    return (adv - mean) / (var.sqrt() + eps) * mask
