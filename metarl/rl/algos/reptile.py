"""Reptile for RL (Nichol, Achiam & Schulman 2018, applied to policies), one meta-iteration per
:meth:`ReptileRL.step`.

    sample a batch of tasks T_i
    for each T_i: phi_i = theta; repeat k times: sample episodes with phi_i, take a
                  policy-gradient step on them (first order, no graph)
    theta <- theta + epsilon * mean_i (phi_i - theta)        (metarl.core.reptile_update)

The same sampler, inner loop and evaluation as MAML-TRPO; only the outer update differs.
"""

from __future__ import annotations

import time
from typing import Any

from metarl.core import detach_params, named_params, reptile_update

from ..inner_loop import InnerLoop
from ..sampling.sampler import Sampler
from ..trajectories import Trajectories


class ReptileRL:
    """Reptile over ``inner.policy`` with the inner loop's resampled PG steps per task."""

    @classmethod
    def from_config(cls, cfg: Any, inner: InnerLoop, sampler: Sampler) -> ReptileRL:
        """From a ``reptile`` algo config (:class:`metarl.rl.config.ReptileConfig`)."""
        return cls(inner, sampler, episodes_per_task=cfg.episodes_per_task, epsilon=cfg.epsilon)

    def __init__(
        self,
        inner: InnerLoop,
        sampler: Sampler,
        *,
        episodes_per_task: int = 20,
        epsilon: float = 0.1,
    ) -> None:
        if inner.spec.steps < 1:
            raise ValueError(f"Reptile needs at least one inner step, got {inner.spec.steps}")
        if inner.spec.learn_lr:
            raise ValueError("Reptile does not learn inner step sizes (learn_lr is Meta-SGD's)")
        self.inner = inner
        self.policy = inner.policy
        self.sampler = sampler
        self.episodes_per_task = episodes_per_task
        self.epsilon = epsilon
        #: the pre-update episodes of the last :meth:`step` (for diagnostics)
        self.pre_update_episodes: Trajectories | None = None

    def step(self, tasks: list[dict]) -> dict[str, float]:
        t0 = time.perf_counter()
        theta = detach_params(named_params(self.policy))
        trajs, _, adapted = self.inner.run(self.sampler, theta, tasks, self.episodes_per_task)
        self.pre_update_episodes = trajs[0]
        t1 = time.perf_counter()
        before = {k: v.clone() for k, v in theta.items()}
        reptile_update(named_params(self.policy), adapted, self.epsilon)
        after = detach_params(named_params(self.policy))
        change = sum(float((after[k] - before[k]).pow(2).sum()) for k in before)
        return {
            "return_before": trajs[0].mean_return(),
            "return_after": trajs[-1].mean_return(),
            "param_change": change**0.5,
            "env_steps": float(sum(t.env_steps for t in trajs)),
            "inner_s": t1 - t0,
            "outer_s": time.perf_counter() - t1,
        }
