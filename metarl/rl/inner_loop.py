"""Adaptation by policy gradient: sample with the current policy, take a step, resample.

Shared by MAML-TRPO and ProMP (which keep the graph of the steps), Reptile and the adaptation
curves of evaluation (which do not). Each step: sample ``episodes`` per task with the current
(per-task) parameters, fit the linear baseline, compute GAE advantages, and take inner step ``k``
of the inner loss (``loss``: ``reinforce``, or ProMP's ``lvc``, :mod:`metarl.rl.losses`) per
task with the core's :class:`metarl.core.InnerSpec` (so step-size schedules,
Meta-SGD's learned step sizes, ANIL's head-only steps and first-order steps mean what they mean
in few-shot learning), mapped over tasks by :func:`metarl.core.map_tasks` (``task_batching``:
``loop`` or ``vmap``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metarl.core import InnerSpec, Params, map_tasks

from .baseline import linear_baseline_values
from .losses import INNER_LOSSES
from .policies import Policy
from .returns import discounted_returns, gae, normalize_advantages
from .sampling.sampler import Sampler
from .trajectories import PGBatch, Trajectories

Learned = Mapping[str, Tensor] | None  # Meta-SGD's per-parameter step sizes, when learned
#: the inner optimizer's state between steps: None, or Adam's (steps taken, (moments, moments))
OptimizerState = tuple[int, tuple[Params, Params]] | None


def is_stacked(policy: Policy, params: Mapping[str, Tensor]) -> bool:
    """Whether ``params`` carry a leading task dimension."""
    name = next(iter(params))
    return params[name].dim() > dict(policy.named_parameters())[name].dim()


@dataclass
class InnerLoop:
    """The policy-gradient inner loop (MAML paper: step size 0.1, gamma 0.99, lambda 1.0).

    ``loss``: the inner loss, ``reinforce`` (MAML's) or ``lvc`` (ProMP's low-variance curvature
    surrogate, whose batches record the sampling policy's log-probabilities)."""

    policy: Policy
    spec: InnerSpec
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True
    task_batching: str = "loop"
    loss: str = "reinforce"

    def __post_init__(self) -> None:
        if self.loss not in INNER_LOSSES:
            raise ValueError(f"inner loss must be one of {sorted(INNER_LOSSES)}, got {self.loss!r}")

    def batch(self, traj: Trajectories, params: Params | None = None) -> PGBatch:
        """The loss's batch; its advantages carry no graph. With ``params`` (the policy that
        sampled ``traj``, shared or stacked) it records their log-probabilities of the actions
        (``old_logp``) when the loss needs them (``lvc``)."""
        with torch.no_grad():
            returns = discounted_returns(traj.rewards, traj.mask, self.gamma)
            values = linear_baseline_values(traj.obs, returns, traj.mask)
            adv = gae(traj.rewards, values, traj.mask, self.gamma, self.gae_lambda)
            if self.normalize_advantages:
                adv = normalize_advantages(adv, traj.mask)
            old_logp = None
            if self.loss == "lvc" and params is not None:
                dist = self.policy.dist(params, traj.obs)
                old_logp = self.policy.log_prob(dist, traj.actions)
        return PGBatch(traj.obs, traj.actions, adv, traj.mask, old_logp)

    def inner_loss(self, params: Params, data: PGBatch) -> Tensor:
        """The inner loss of one task's batch."""
        return INNER_LOSSES[self.loss](self.policy, params, data)

    def step(
        self,
        params: Params,
        data: PGBatch,
        k: int = 0,
        learned: Learned = None,
        first_order: bool | None = None,
        lr: float | None = None,
    ) -> Params:
        """Inner step ``k`` on every task (its step size, or ``lr``); returns stacked
        ``[tasks, ...]`` parameters."""

        def one_task(p: Params, d: PGBatch) -> Params:
            loss = lambda q: self.inner_loss(q, d)  # noqa: E731
            return self.spec.step(loss, p, k, learned, first_order, lr)

        in_dims = (0 if is_stacked(self.policy, params) else None, 0)
        return map_tasks(one_task, params, data, in_dims=in_dims, mode=self.task_batching)

    def optimizer_step(
        self,
        params: Params,
        data: PGBatch,
        k: int,
        state: OptimizerState,
        learned: Learned = None,
        lr: float | None = None,
    ) -> tuple[Params, OptimizerState]:
        """First-order inner step ``k`` with the spec's optimizer on every task, threading its
        state (``None`` at the first step; SGD keeps none, Adam its per-task moments)."""
        if self.spec.optimizer == "sgd":
            return self.step(params, data, k, learned, True, lr), None
        steps_taken, moments = (0, None) if state is None else state

        def one_task(p: Params, d: PGBatch, mv: tuple[Params, Params] | None):
            loss = lambda q: self.inner_loss(q, d)  # noqa: E731
            task_state = None if mv is None else (steps_taken, *mv)
            new, (_, m, v) = self.spec.stateful_step(loss, p, task_state, k, lr)
            return new, (m, v)

        in_dims = (0 if is_stacked(self.policy, params) else None, 0, None if state is None else 0)
        new, moments = map_tasks(
            one_task, params, data, moments, in_dims=in_dims, mode=self.task_batching
        )
        return new, (steps_taken + 1, moments)

    def run(
        self,
        sampler: Sampler,
        params: Params,
        tasks: list[dict],
        episodes: int,
        steps: int | None = None,
        rng: np.random.Generator | None = None,
        lrs: Sequence[float] | None = None,
        learned: Learned = None,
    ) -> tuple[list[Trajectories], list[PGBatch], Params]:
        """Adapt ``params`` to ``tasks`` with ``steps`` (default the spec's) sample-then-step
        rounds, keeping no graph.

        ``lrs``: step size of each round (the last one repeats), replacing the spec's schedule
        (test-time step sizes). Returns the ``steps + 1`` trajectory batches (sampled after
        0..steps steps), the ``steps`` loss batches the steps used, and the adapted stacked
        parameters.
        """
        steps = self.spec.steps if steps is None else steps
        trajs: list[Trajectories] = []
        batches: list[PGBatch] = []
        state = None
        for k in range(steps):
            trajs.append(sampler.sample(params, tasks, episodes, rng))
            batches.append(self.batch(trajs[-1], params))
            lr = lrs[min(k, len(lrs) - 1)] if lrs else None
            with torch.no_grad():
                params, state = self.optimizer_step(params, batches[-1], k, state, learned, lr)
        trajs.append(sampler.sample(params, tasks, episodes, rng))
        return trajs, batches, {k: v.detach() for k, v in params.items()}

    def adaptation_returns(
        self,
        sampler: Sampler,
        params: Params,
        tasks: list[dict],
        steps: int,
        episodes: int,
        rng: np.random.Generator,
        lrs: Sequence[float] | None = None,
        learned: Learned = None,
    ) -> tuple[Tensor, Params]:
        """The adaptation curve on ``tasks`` (the MAML paper's figures): the mean return per task
        of episodes sampled after 0..``steps`` inner steps, ``[steps + 1, tasks]``, and the final
        adapted (stacked) parameters. ``lrs`` as in :meth:`run`. Summarise over tasks with
        :func:`metarl.core.summarize`."""
        params = {k: v.detach() for k, v in params.items()}
        trajs, _, adapted = self.run(sampler, params, tasks, episodes, steps, rng, lrs, learned)
        return torch.stack([t.task_returns() for t in trajs]), adapted

    def replay(self, params: Params, batches: list[PGBatch], learned: Learned = None) -> Params:
        """Redo the adaptation steps on stored batches, keeping the graph the spec asks for
        (MAML-TRPO's ``theta -> theta'_i``, differentiable in ``params`` and ``learned``)."""
        return self.replay_path(params, batches, learned)[-1]

    def replay_path(
        self, params: Params, batches: list[PGBatch], learned: Learned = None
    ) -> list[Params]:
        """:meth:`replay`, returning the parameters before each step and after the last
        (``len(batches) + 1`` dicts; ProMP's KL penalty reads those before each step)."""
        path = [params]
        for k, data in enumerate(batches):
            path.append(self.step(path[-1], data, k, learned))
        return path
