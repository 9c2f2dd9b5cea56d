"""ProMP: Proximal Meta-Policy Search (Rothfuss, Lee, Clavera, Asfour & Abbeel, ICLR 2019,
Algorithm 1), one meta-iteration per :meth:`ProMP.step`.

    sample a batch of tasks T_i
    for n = 0 .. N - 1:                                                    (N = num_ppo_steps)
        if n = 0:
            theta_o <- theta
            for each T_i:
                sample pre-update episodes D_i with pi_theta
                theta'_{o,i} = theta + alpha grad J^LVC_Ti(theta) on D_i
                sample post-update episodes D'_i with pi_theta'_{o,i}
        theta'_i(theta) = theta + alpha grad J^LVC_Ti(theta) on D_i
        theta <- theta + beta grad_theta J^ProMP(theta)                          (an Adam step)

    J^LVC_T(theta)   = E_D[ sum_t pi_theta(a_t|s_t) / stopgrad(pi_theta_o(a_t|s_t)) A_t ]
    J^ProMP(theta)   = mean_i J^CLIP_Ti(theta'_i(theta)) - eta mean_i KL(pi_theta_o || pi_theta)
    J^CLIP_T(theta') = E_D'[ sum_t min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ],
                       r_t = pi_theta'(a_t|s_t) / pi_theta'_o(a_t|s_t)

:meth:`ProMP.step` is those lines: :meth:`~ProMP.sample` is the ``n = 0`` block (the shared
inner loop, stepping on the LVC loss, :func:`metarl.rl.losses.lvc_loss`); :meth:`~ProMP.optimize`
the ``N`` Adam steps, each recomputing ``theta'_i(theta)`` from the stored pre-update episodes
(:meth:`~ProMP.objective`: away from ``theta_o`` the LVC ratio importance-weights the inner
step; at ``theta_o`` its gradient is the policy gradient and its Hessian is the low-variance
curvature estimate the meta-gradient differentiates); :meth:`~ProMP.adapt_kl_penalty` the
adaptive ``eta`` of the authors' code.

With several inner steps (the authors' code allows them, the paper uses one) step ``k`` has its
own LVC ratio against the policy that sampled its episodes, its own KL term on them and its own
``eta_k``; the penalty is the mean of ``eta_k * KL_k`` over steps. Objectives are per-task means
over valid time steps, then means over tasks, as the authors' ``reduce_mean``
(:mod:`metarl.rl.losses`). The outer Adam's moments and ``eta`` persist across iterations
(:meth:`~ProMP.state_dict`).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from metarl.core import Params, detach_params, load_optimizer_state, named_params

from ..inner_loop import InnerLoop
from ..losses import clipped_surrogate_loss, masked_mean, mean_kl
from ..policies import Dist
from ..sampling.sampler import Sampler
from ..trajectories import PGBatch, Trajectories


@dataclass
class ProMPBatch:
    """One iteration's episodes: the ``steps + 1`` sampling rounds, the pre-update batches the
    inner steps use (``old_logp``: their sampling policies') with those policies' action
    distributions on them (the KL penalty's anchors), and the post-update batch
    (``old_logp``: theta'_{o,i}'s) with theta'_{o,i}'s distributions on it."""

    trajs: list[Trajectories]
    support: list[PGBatch]
    support_dists: list[Dist]
    query: PGBatch
    query_dist: Dist


class Objective(NamedTuple):
    """``-J^ProMP`` (``loss``) and its parts: the clipped surrogate ``-J^CLIP``, the KL to the
    sampling policy of each inner step (``[steps]``) and the adapted parameters theta'_i."""

    loss: Tensor
    surrogate: Tensor
    inner_kl: Tensor
    adapted: Params


class ProMP:
    """ProMP over ``inner.policy`` (theta); ``sampler`` runs the episodes, the shared inner loop
    steps on the LVC objective."""

    def __init__(
        self,
        inner: InnerLoop,
        sampler: Sampler,
        *,
        episodes_per_task: int = 20,
        num_ppo_steps: int = 5,
        clip_eps: float = 0.3,
        learning_rate: float = 1e-3,
        init_inner_kl_penalty: float = 5e-4,
        adaptive_inner_kl_penalty: bool = False,
        target_inner_step: float = 0.01,
    ) -> None:
        spec = inner.spec
        if spec.steps < 1:
            raise ValueError(f"ProMP needs at least one inner step, got {spec.steps}")
        if spec.learn_lr:
            raise ValueError("ProMP does not learn inner step sizes; remove learn_lr")
        if spec.optimizer != "sgd":
            raise ValueError(f"ProMP's inner steps are SGD steps, got {spec.optimizer!r}")
        if num_ppo_steps < 1 or not 0.0 < clip_eps < 1.0:
            raise ValueError(
                f"need num_ppo_steps >= 1 and 0 < clip_eps < 1, got {num_ppo_steps}, {clip_eps}"
            )
        self.inner = dataclasses.replace(inner, loss="lvc")
        self.policy = inner.policy
        self.sampler = sampler
        self.episodes_per_task = episodes_per_task
        self.num_ppo_steps = num_ppo_steps
        self.clip_eps = clip_eps
        self.adaptive_inner_kl_penalty = adaptive_inner_kl_penalty
        self.target_inner_step = target_inner_step
        #: eta, one per inner step
        self.inner_kl_penalty = [float(init_inner_kl_penalty)] * spec.steps
        self.optimizer = torch.optim.Adam(named_params(self.policy).values(), lr=learning_rate)
        #: the pre-update episodes of the last :meth:`step` (for diagnostics)
        self.pre_update_episodes: Trajectories | None = None

    @classmethod
    def from_config(cls, cfg: Any, inner: InnerLoop, sampler: Sampler) -> ProMP:
        """From a ``promp`` algo config (:class:`metarl.rl.config.ProMPConfig`)."""
        keys = (
            "episodes_per_task",
            "num_ppo_steps",
            "clip_eps",
            "learning_rate",
            "init_inner_kl_penalty",
            "adaptive_inner_kl_penalty",
            "target_inner_step",
        )
        return cls(inner, sampler, **{k: getattr(cfg, k) for k in keys})

    # -- Algorithm 1 -----------------------------------------------------------------------------
    def step(self, tasks: list[dict]) -> dict[str, float]:
        t0 = time.perf_counter()
        batch = self.sample(tasks)
        t1 = time.perf_counter()
        eta = sum(self.inner_kl_penalty) / len(self.inner_kl_penalty)
        before, after = self.optimize(batch)
        self.adapt_kl_penalty(after.inner_kl)
        with torch.no_grad():
            outer_kl = mean_kl(self.policy, batch.query_dist, after.adapted, batch.query)
            clipped = self.clip_fraction(after.adapted, batch.query)
        t2 = time.perf_counter()
        return {
            "return_before": batch.trajs[0].mean_return(),
            "return_after": batch.trajs[-1].mean_return(),
            "kl": float(outer_kl),
            "kl_inner": float(after.inner_kl.mean()),
            "clip_fraction": float(clipped),
            "surrogate_change": float(before.surrogate - after.surrogate),
            "inner_kl_penalty": eta,
            "env_steps": float(sum(t.env_steps for t in batch.trajs)),
            "inner_s": t1 - t0,
            "outer_s": t2 - t1,
        }

    def sample(self, tasks: list[dict]) -> ProMPBatch:
        """The ``n = 0`` block: theta_o <- theta, pre-update episodes with pi_theta_o, the LVC
        inner steps, post-update episodes with pi_theta'_{o,i}."""
        theta_o = detach_params(named_params(self.policy))
        trajs, support, adapted = self.inner.run(
            self.sampler, theta_o, tasks, self.episodes_per_task
        )
        self.pre_update_episodes = trajs[0]
        with torch.no_grad():
            path = self.inner.replay_path(theta_o, support[:-1])  # the sampling policies
            support_dists = [self.policy.dist(p, b.obs) for p, b in zip(path, support)]
            query = self.inner.batch(trajs[-1], adapted)
            query_dist = self.policy.dist(adapted, query.obs)
        return ProMPBatch(trajs, support, support_dists, query, query_dist)

    def objective(self, theta: Params, batch: ProMPBatch) -> Objective:
        """``-J^ProMP(theta)``: theta'_i(theta) by the LVC inner steps on the stored pre-update
        episodes, the clipped surrogate of theta'_i on the post-update episodes against
        theta'_{o,i}, and ``eta_k * KL(pi_o || pi)`` on each step's pre-update episodes."""
        path = self.inner.replay_path(theta, batch.support)
        inner_kl = torch.stack(
            [
                mean_kl(self.policy, old, params, data)
                for old, params, data in zip(batch.support_dists, path, batch.support)
            ]
        )
        adapted = path[-1]
        surrogate = clipped_surrogate_loss(
            self.policy, adapted, batch.query, batch.query.old_logp, self.clip_eps
        )
        eta = torch.tensor(self.inner_kl_penalty, dtype=inner_kl.dtype, device=inner_kl.device)
        return Objective(surrogate + (eta * inner_kl).mean(), surrogate, inner_kl, adapted)

    def optimize(self, batch: ProMPBatch) -> tuple[Objective, Objective]:
        """``num_ppo_steps`` Adam steps on ``-J^ProMP`` without resampling; returns the
        objective before the first step and after the last (no graph)."""
        theta = named_params(self.policy)
        first = None
        for _ in range(self.num_ppo_steps):
            objective = self.objective(theta, batch)
            if first is None:
                first = _detached(objective)
            self.optimizer.zero_grad()
            objective.loss.backward()
            self.optimizer.step()
        with torch.no_grad():
            last = _detached(self.objective(detach_params(theta), batch))
        return first, last

    def adapt_kl_penalty(self, inner_kl: Tensor) -> None:
        """The authors' adaptive eta: halve ``eta_k`` where step ``k``'s KL after the update is
        below ``target / 1.5``, double it above ``1.5 * target`` (when adaptive)."""
        if not self.adaptive_inner_kl_penalty:
            return
        target = self.target_inner_step
        for k, kl in enumerate(inner_kl.tolist()):
            if kl < target / 1.5:
                self.inner_kl_penalty[k] /= 2.0
            elif kl > target * 1.5:
                self.inner_kl_penalty[k] *= 2.0

    def clip_fraction(self, adapted: Params, query: PGBatch) -> Tensor:
        """The fraction of post-update steps whose ratio ``pi_theta'_i / pi_theta'_{o,i}`` lies
        outside ``[1 - eps, 1 + eps]`` (mean over tasks of each task's fraction)."""
        logp = self.policy.log_prob(self.policy.dist(adapted, query.obs), query.actions)
        outside = ((logp - query.old_logp).exp() - 1.0).abs() > self.clip_eps
        return masked_mean(outside.to(logp.dtype), query.mask, batched=True).mean()

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The outer Adam's state and eta (tensors and plain data)."""
        return {
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),  # Adam updates in place
            "inner_kl_penalty": list(self.inner_kl_penalty),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_optimizer_state(self.optimizer, state["optimizer"])  # saved on any device
        self.inner_kl_penalty = [float(x) for x in state["inner_kl_penalty"]]


def _detached(objective: Objective) -> Objective:
    return Objective(
        objective.loss.detach(),
        objective.surrogate.detach(),
        objective.inner_kl.detach(),
        detach_params(objective.adapted),
    )
