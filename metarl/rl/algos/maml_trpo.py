"""MAML-TRPO (Finn, Abbeel & Levine 2017, Algorithm 3), one meta-iteration per :meth:`step`.

    sample a batch of tasks T_i
    for each T_i:
        sample K trajectories D_i with f_theta                      (support)
        theta'_i = theta - alpha * grad L_Ti(f_theta) on D_i        (inner PG step, with graph)
        sample trajectories D'_i with f_theta'_i                    (query)
    theta <- TRPO step on sum_i L_Ti(f_theta'_i) on D'_i, with the KL between the old and new
             adapted policies on D'_i as the trust region, differentiated through the inner step

The Hessian-vector products of the KL with respect to theta are exact and batched over tasks:
``J^T H_KL J v`` with ``J`` the Jacobian of the inner step (the other chain-rule term vanishes
because the KL's gradient is zero at the old policy). With one inner step
(:func:`metarl.rl.algos.trpo.one_step_kl_hvp`) ``J = I - alpha * H_support`` and each product is two
backward passes through the support gradient's graph (built once per iteration) and one Fisher
product of the KL (:func:`metarl.rl.losses.kl_hessian_product`); with more steps,
:func:`metarl.rl.algos.trpo.meta_kl_hvp` uses ``torch.func.jvp`` / ``vjp`` through the steps. The
products are TRPO's main cost; ``hvp_subsample < 1`` computes them on the first fraction of each
task's support and query episodes (OpenAI Baselines' TRPO uses every 5th sample; rllab's
``subsample_factor``): a cheaper, still positive semi-definite metric for the step direction,
while the gradient, the surrogate and the line search's KL test use all episodes. The line
search re-runs the inner step for each candidate theta on the same support batches.

Subsampled curvature is biased upward for meta-learning: the support Hessian's sampling noise
``E`` enters ``J^T F J`` twice (``J = I - alpha (H + E)``) and adds ``alpha^2 E^T F E``, so the
step TRPO scales to ``max_kl`` reaches only part of it (measured in docs/RESULTS.md).
``first_order=True`` drops the inner step's second-order term (FOMAML-TRPO). As in every
public implementation, the gradient does not flow through the pre-update sampling distribution
(E-MAML, DiCE and ProMP add that term).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from metarl.core import Params, detach_params, named_params

from ..inner_loop import InnerLoop
from ..losses import kl_hessian_product, mean_kl, reinforce_loss, surrogate_loss
from ..sampling.sampler import Sampler
from ..trajectories import Trajectories
from .trpo import (
    flatten,
    line_search,
    meta_kl_hvp,
    one_step_kl_hvp,
    trpo_step_direction,
    unflatten,
)


class MAMLTRPO:
    """MAML with a TRPO outer step; ``policy`` holds theta, ``sampler`` runs the episodes."""

    def __init__(
        self,
        inner: InnerLoop,
        sampler: Sampler,
        episodes_per_task: int = 20,
        inner_steps: int = 1,
        first_order: bool = False,
        max_kl: float = 1e-2,
        cg_iters: int = 10,
        cg_damping: float = 1e-5,
        ls_max_steps: int = 15,
        ls_backtrack: float = 0.8,
        hvp_subsample: float = 1.0,
    ) -> None:
        if not 0.0 < hvp_subsample <= 1.0:
            raise ValueError(f"hvp_subsample must be in (0, 1], got {hvp_subsample}")
        self.inner = inner
        self.policy = inner.policy
        self.sampler = sampler
        self.episodes_per_task = episodes_per_task
        self.inner_steps = inner_steps
        self.first_order = first_order
        self.max_kl = max_kl
        self.cg_iters = cg_iters
        self.cg_damping = cg_damping
        self.ls_max_steps = ls_max_steps
        self.ls_backtrack = ls_backtrack
        self.hvp_subsample = hvp_subsample
        #: the pre-update episodes of the last :meth:`step` (for diagnostics)
        self.pre_update_episodes: Trajectories | None = None

    def step(self, tasks: list[dict]) -> dict[str, float]:
        theta = detach_params(named_params(self.policy))
        t0 = time.perf_counter()

        # inner loop: support trajectories D_i, adapted theta'_i, query trajectories D'_i
        trajs, support, _ = self.inner.run(
            self.sampler, theta, tasks, self.inner_steps, self.episodes_per_task
        )
        query = self.inner.batch(trajs[-1])
        self.pre_update_episodes = trajs[0]

        def adapt(params: Params) -> Params:  # theta -> stacked theta'_i (the inner steps)
            return self.inner.replay(params, support, self.first_order)

        if self.inner_steps == 1:  # fast path: J_i = I - lr * H_i is symmetric
            with torch.no_grad():
                adapted = adapt(theta)
            vjp = None
        else:
            adapted, vjp = torch.func.vjp(adapt, theta)
        with torch.no_grad():
            old_dist = self.policy.dist(adapted, query["obs"])
            old_logp = self.policy.log_prob(old_dist, query["actions"])
        t1 = time.perf_counter()

        # outer loop: TRPO on the query surrogate, trust region on the KL of the adapted policies;
        # the curvature products may use the first episodes of each task only (hvp_subsample)
        support_c = [self._curvature_slice(b) for b in support]
        kl_hvp = kl_hessian_product(self.policy, adapted, self._curvature_slice(query))
        if vjp is None:
            hvp, adapt_vjp = one_step_kl_hvp(
                lambda p: reinforce_loss(self.policy, p, support_c[0], batched=True).sum(),
                theta,
                len(tasks),
                self.inner.inner_lr,
                self.first_order,
                kl_hvp,
                self.cg_damping,
            )
            if self.hvp_subsample < 1.0:  # the gradient goes through the full support batch
                adapt_vjp = _vjp_of(adapt, theta)
        else:

            def adapt_c(params: Params) -> Params:
                return self.inner.replay(params, support_c, self.first_order)

            adapt_vjp = _vjp_of(adapt, theta, vjp)
            vjp_c = adapt_vjp if self.hvp_subsample >= 1.0 else _vjp_of(adapt_c, theta)
            hvp = meta_kl_hvp(adapt_c, vjp_c, theta, kl_hvp, self.cg_damping)

        old_loss = float(surrogate_loss(self.policy, adapted, query, old_logp))
        grad_adapted = torch.func.grad(lambda p: surrogate_loss(self.policy, p, query, old_logp))(
            adapted
        )
        grad = adapt_vjp(grad_adapted)
        full_step = trpo_step_direction(flatten(grad.values()), hvp, self.max_kl, self.cg_iters)

        def evaluate(candidate: torch.Tensor) -> tuple[float, float]:
            new_adapted = adapt(unflatten(candidate, theta))
            return (
                float(surrogate_loss(self.policy, new_adapted, query, old_logp)),
                float(mean_kl(self.policy, old_dist, new_adapted, query)),
            )

        result = None
        if full_step is not None:
            with torch.no_grad():
                result = line_search(
                    evaluate,
                    flatten(theta.values()),
                    full_step,
                    old_loss,
                    self.max_kl,
                    self.ls_max_steps,
                    self.ls_backtrack,
                )
            self._load_flat(result.params)
        t2 = time.perf_counter()

        return {
            "return_before": float(trajs[0].returns.mean()),
            "return_after": float(trajs[-1].returns.mean()),
            "kl": result.kl if result else 0.0,
            "surrogate_change": (old_loss - result.loss) if result else 0.0,
            "ls_steps": float(result.steps if result else 0),
            "ls_accepted": float(bool(result and result.accepted)),
            "env_steps": float(sum(t.env_steps for t in trajs)),
            "inner_s": t1 - t0,
            "outer_s": t2 - t1,
        }

    def _curvature_slice(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The first ``ceil(hvp_subsample * episodes)`` episodes of every task (all if 1.0)."""
        if self.hvp_subsample >= 1.0:
            return batch
        episodes = batch["obs"].shape[1]
        keep = max(1, math.ceil(self.hvp_subsample * episodes))
        return {k: v[:, :keep] for k, v in batch.items()}

    def _load_flat(self, vector: torch.Tensor) -> None:
        params: Params = named_params(self.policy)
        with torch.no_grad():
            for k, v in unflatten(vector, params).items():
                params[k].copy_(v)


def _vjp_of(fn: Callable[[Params], Params], theta: Params, vjp: Callable | None = None):
    """``w -> J^T w`` for ``J`` the Jacobian of ``fn`` at ``theta`` (reusing ``vjp`` if given)."""
    if vjp is None:
        _, vjp = torch.func.vjp(fn, theta)
    return lambda w: vjp(w)[0]
