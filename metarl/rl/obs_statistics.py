"""Fixed observation statistics for ``policy.normalize_obs``, measured once before training.

Each observation dimension is standardised as ``clip((obs - mean) / std, -10, 10)`` with a
``mean`` and ``std`` measured over :data:`EPISODES` episodes of uniformly random actions, one on
each of :data:`EPISODES` training tasks, and never updated afterwards (so the policy's input map
does not move under the meta-gradient, unlike a running normaliser). Random actions stand in
for the initial policy, whose log-std of 0 explores nearly as widely. The statistics are a
function of the config's seed alone (its own stream ``[seed, 13]``, so the other streams, the
initial weights included, are the same with or without normalisation) and are saved with the
policy's state in every checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

#: warm-up episodes (one per sampled training task)
EPISODES = 20
#: smallest ``std`` used, so a dimension constant during the warm-up cannot blow up later
STD_FLOOR = 1e-3


def random_action_statistics(env, horizon: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension ``(mean, std)`` of the observations of :data:`EPISODES` random-action
    episodes of ``env`` (a ``gymnasium.make`` env with the task API on ``env.unwrapped``), each
    at most ``horizon`` steps."""
    rng = np.random.default_rng([seed, 13])
    task_env = env.unwrapped
    tasks = task_env.sample_tasks(EPISODES, rng)
    space = env.action_space
    observations = []
    for task in tasks:
        task_env.set_task(task)
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        observations.append(obs)
        for _ in range(horizon):
            if isinstance(space, spaces.Discrete):
                action = int(rng.integers(space.n))
            else:
                action = rng.uniform(space.low, space.high).astype(space.dtype)
            obs, _, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            if terminated or truncated:
                break
    stacked = np.asarray(observations, dtype=np.float64)
    if not np.isfinite(stacked).all():
        raise FloatingPointError(
            f"{env.spec.id if env.spec else env}: random-action episodes gave a non-finite "
            "observation, so no observation statistics can be measured; set "
            "policy.normalize_obs: false"
        )
    mean = torch.as_tensor(stacked.mean(0), dtype=torch.float32)
    std = torch.as_tensor(stacked.std(0), dtype=torch.float32).clamp_min(STD_FLOOR)
    return mean, std
