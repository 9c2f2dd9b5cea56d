"""The typed data of meta-RL: the episodes every sampler backend returns, and the batch a
policy-gradient loss reads."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class Trajectories:
    """Episodes of a meta-batch, padded to ``H``: the longest episode in the batch (at most the
    horizon; sampling stops once every episode has ended).

    ================ ============================ ==============================================
    field            shape                        meaning
    ================ ============================ ==============================================
    ``obs``          ``[tasks, episodes, H, o]``  observation the action was taken in
    ``actions``      ``[tasks, episodes, H, a]``  action taken (``[.., H]`` int64 if discrete);
                                                  unclipped, as sampled from the policy
    ``rewards``      ``[tasks, episodes, H]``     reward (0 where ``mask`` is 0)
    ``mask``         ``[tasks, episodes, H]``     1.0 for steps inside the episode, 0.0 after
                                                  termination, truncation or sim instability
                                                  (all 0.0 for an empty episode: the padding of
                                                  ``sampler.budget: steps``)
    ``returns``      ``[tasks, episodes]``        undiscounted episode return
    ``lengths``      ``[tasks, episodes]``        steps in the episode (int64)
    ``reward_ctrl``  ``[tasks, episodes, H]``     the control term of ``rewards`` (<= 0) where
                     or None                      the env reports it (``info["reward_ctrl"]``,
                                                  the MuJoCo families), else None
    ================ ============================ ==============================================

    All floating tensors are float32, on the CPU where sampling made them, on the learner's
    device after :meth:`to` (the sampler's ``device``).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    returns: Tensor
    lengths: Tensor
    reward_ctrl: Tensor | None = None

    def to(self, device: torch.device | str) -> Trajectories:
        """Every tensor on ``device`` (itself, not a copy, where they are there already)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: None if t is None else t.to(device) for k, t in moved.items()})

    @property
    def num_tasks(self) -> int:
        return int(self.obs.shape[0])

    @property
    def env_steps(self) -> int:
        """Environment steps taken (the sum of episode lengths)."""
        return int(self.lengths.sum())

    def _taken(self, like: Tensor) -> Tensor:
        """``[tasks, episodes]``: 1 for an episode with a step, 0 for an empty one (the padding
        of ``sampler.budget: steps``, whose tasks keep different numbers of episodes)."""
        return (self.lengths > 0).to(like.dtype)

    def task_mean(self, per_episode: Tensor) -> Tensor:
        """``[tasks]``: the mean of ``per_episode`` (``[tasks, episodes]``) over each task's
        episodes, empty ones skipped."""
        taken = self._taken(per_episode)
        return (per_episode * taken).sum(1) / taken.sum(1).clamp_min(1.0)

    def task_returns(self) -> Tensor:
        """Mean episode return per task, ``[tasks]``."""
        return self.task_mean(self.returns)

    def pooled_mean(self, per_episode: Tensor) -> float:
        """The mean of ``per_episode`` (``[tasks, episodes]``) over all of the batch's episodes,
        empty ones skipped (tasks with more episodes weigh more)."""
        taken = self._taken(per_episode)
        return float((per_episode * taken).sum() / taken.sum().clamp_min(1.0))

    def mean_return(self) -> float:
        """The mean episode return over the whole batch (the MAML code's ``AverageReturn``)."""
        return self.pooled_mean(self.returns)


class PGBatch(NamedTuple):
    """What a policy-gradient loss reads, ``[tasks, episodes, H, ...]`` (or without the task
    dimension for one task): ``obs``, ``actions``, ``advantages`` (carry no graph) and ``mask``
    as in :class:`Trajectories`, and ``old_logp``, the log-probabilities of the actions under
    the policy that sampled them (``[tasks, episodes, H]``, no graph; ProMP's LVC inner loss
    divides by them), or None where not recorded. A pytree, so ``torch.func.vmap`` maps over
    its tasks."""

    obs: Tensor
    actions: Tensor
    advantages: Tensor
    mask: Tensor
    old_logp: Tensor | None = None

    def first_episodes(self, n: int) -> PGBatch:
        """The first ``n`` episodes of every task."""
        return PGBatch(*(None if t is None else t[:, :n] for t in self))
