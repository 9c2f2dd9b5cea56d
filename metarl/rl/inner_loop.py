"""Adaptation by policy gradient: sample with the current policy, take a step, resample.

Shared by MAML-TRPO (which keeps the graph of the steps), Reptile and the adaptation curves of
evaluation (which do not). Each step: sample ``episodes`` per task with the current (per-task) parameters, fit the
linear baseline, compute GAE advantages, and take one gradient step of the REINFORCE loss per
task with :func:`metarl.core.gradient_step`, mapped over tasks by :func:`metarl.core.map_tasks`
(``task_batching``: ``loop`` or ``vmap``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metarl.core import Params, gradient_step, map_tasks

from .baseline import linear_baseline_values
from .losses import reinforce_loss
from .policies import Policy
from .returns import discounted_returns, gae, normalize_advantages
from .sampling.sampler import Sampler
from .trajectories import Trajectories


def is_stacked(policy: Policy, params: Mapping[str, Tensor]) -> bool:
    """Whether ``params`` carry a leading task dimension."""
    name = next(iter(params))
    return params[name].dim() > dict(policy.named_parameters())[name].dim()


@dataclass
class InnerLoop:
    """The inner-loop settings (MAML paper: ``inner_lr`` 0.1, gamma 0.99, lambda 1.0)."""

    policy: Policy
    inner_lr: float
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True
    task_batching: str = "loop"

    def batch(self, traj: Trajectories) -> dict[str, Tensor]:
        """``{obs, actions, advantages, mask}`` for the loss; advantages carry no graph."""
        with torch.no_grad():
            returns = discounted_returns(traj.rewards, traj.mask, self.gamma)
            values = linear_baseline_values(traj.obs, returns, traj.mask)
            adv = gae(traj.rewards, values, traj.mask, self.gamma, self.gae_lambda)
            if self.normalize_advantages:
                adv = normalize_advantages(adv, traj.mask)
        return {"obs": traj.obs, "actions": traj.actions, "advantages": adv, "mask": traj.mask}

    def step(
        self,
        params: Params,
        data: Mapping[str, Tensor],
        first_order: bool,
        lr: float | None = None,
    ) -> Params:
        """One policy-gradient step per task (step size ``lr``, default ``inner_lr``); returns
        stacked ``[tasks, ...]`` parameters."""
        lr = self.inner_lr if lr is None else lr

        def one_task(p: Params, d: dict[str, Tensor]) -> Params:
            return gradient_step(lambda q: reinforce_loss(self.policy, q, d), p, lr, first_order)

        in_dims = (0 if is_stacked(self.policy, params) else None, 0)
        return map_tasks(one_task, params, dict(data), in_dims=in_dims, mode=self.task_batching)

    def run(
        self,
        sampler: Sampler,
        params: Params,
        tasks: list[dict],
        steps: int,
        episodes: int,
        keep_graph: bool = False,
        first_order: bool = True,
        rng: np.random.Generator | None = None,
        lrs: Sequence[float] | None = None,
    ) -> tuple[list[Trajectories], list[dict[str, Tensor]], Params]:
        """Adapt ``params`` to ``tasks`` with ``steps`` sample-then-step rounds.

        ``lrs``: step size of each round (the last one repeats); default ``inner_lr`` for all.

        Returns the ``steps + 1`` trajectory batches (sampled after 0..steps steps), the
        ``steps`` loss batches the steps used, and the adapted stacked parameters (with the
        graph through the steps if ``keep_graph``, else detached).
        """
        trajs: list[Trajectories] = []
        batches: list[dict[str, Tensor]] = []
        for k in range(steps):
            trajs.append(sampler.sample(params, tasks, episodes, rng))
            batches.append(self.batch(trajs[-1]))
            lr = lrs[min(k, len(lrs) - 1)] if lrs else None
            with torch.enable_grad() if keep_graph else torch.no_grad():
                params = self.step(params, batches[-1], first_order, lr)
        trajs.append(sampler.sample(params, tasks, episodes, rng))
        if not keep_graph:
            params = {k: v.detach() for k, v in params.items()}
        return trajs, batches, params

    def adaptation_returns(
        self,
        sampler: Sampler,
        params: Params,
        tasks: list[dict],
        steps: int,
        episodes: int,
        rng: np.random.Generator,
        lrs: Sequence[float] | None = None,
    ) -> tuple[Tensor, Params]:
        """The adaptation curve on ``tasks`` (the MAML paper's figures): the mean return per task
        of episodes sampled after 0..``steps`` inner steps, ``[steps + 1, tasks]``, and the final
        adapted (stacked) parameters. ``lrs`` as in :meth:`run`. Summarise over tasks with
        :func:`metarl.core.summarize`."""
        params = {k: v.detach() for k, v in params.items()}
        trajs, _, adapted = self.run(sampler, params, tasks, steps, episodes, rng=rng, lrs=lrs)
        return torch.stack([t.task_returns() for t in trajs]), adapted

    def replay(self, params: Params, batches: list[dict[str, Tensor]], first_order: bool) -> Params:
        """Redo the adaptation steps on stored batches (the line search's new theta)."""
        for data in batches:
            params = self.step(params, data, first_order)
        return params
