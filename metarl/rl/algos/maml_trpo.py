"""MAML-TRPO (Finn, Abbeel & Levine 2017, Algorithm 3), one meta-iteration per :meth:`step`.

    sample a batch of tasks T_i
    for each T_i:
        sample K trajectories D_i with f_theta                      (support)
        theta'_i = theta - alpha * grad L_Ti(f_theta) on D_i        (inner PG step)
        sample trajectories D'_i with f_theta'_i                    (query)
    theta <- TRPO step on sum_i L_Ti(f_theta'_i) on D'_i, with the KL between the old and new
             adapted policies on D'_i as the trust region, differentiated through the inner step

:meth:`MAMLTRPO.step` is those lines, each a named method: :meth:`~MAMLTRPO.sample` (the inner
loop's episodes), :meth:`~MAMLTRPO.adaptation` (``theta -> theta'_i`` on the stored support
batches), :meth:`~MAMLTRPO.curvature` (the trust region's Hessian-vector products) and
:meth:`~MAMLTRPO.trpo_update` (gradient, conjugate gradient, line search).

The meta-parameters are the policy's weights, plus Meta-SGD's per-parameter step sizes when the
inner loop learns them (``InnerSpec.learn_lr``); TRPO steps all of them in one trust region.

Curvature: the KL's Hessian in the meta-parameters is ``J^T H_KL J`` with ``J`` the Jacobian of
the inner steps (the other chain-rule term vanishes because the KL's gradient is zero at the old
policy). For one plain inner step ``J = I - alpha * H_support`` is symmetric and each product is
two backward passes through the support gradient plus one Fisher product
(:func:`metarl.rl.algos.trpo.one_step_kl_hvp`); otherwise (several steps, schedules, Meta-SGD,
ANIL) ``torch.func.jvp`` / ``vjp`` go through the steps (:func:`metarl.rl.algos.trpo.meta_kl_hvp`).
``hvp_subsample < 1`` computes the products on the first fraction of each task's support and
query episodes (OpenAI Baselines' TRPO: every 5th sample); the gradient, the surrogate and the
line search's KL test use every episode. ``first_order`` drops the inner steps' second-order
term (FOMAML-TRPO). As in every public implementation, the gradient does not flow through the
pre-update sampling distribution (E-MAML, DiCE and ProMP add that term).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metarl.core import Params, detach_params, named_params

from ..inner_loop import InnerLoop
from ..losses import kl_hessian_product, reinforce_loss, surrogate_and_kl, surrogate_loss
from ..policies import Dist
from ..sampling.sampler import Sampler
from ..trajectories import PGBatch, Trajectories
from .trpo import (
    LineSearchResult,
    flatten,
    line_search,
    meta_kl_hvp,
    one_step_kl_hvp,
    trpo_step_direction,
    unflatten,
)

LR_PREFIX = "inner_lr:"  # names of Meta-SGD's step sizes among the meta-parameters

Adapt = Callable[[Params], Params]
VJP = Callable[[Params], Params]


@dataclass
class MetaBatch:
    """One iteration's episodes: all ``steps + 1`` sampling rounds, the support batches the
    inner steps used, the query batch (after the last step) and the adapted parameters that
    sampled it (theta'_i, no graph)."""

    trajs: list[Trajectories]
    support: list[PGBatch]
    query: PGBatch
    adapted: Params


@dataclass
class Anchor:
    """The adapted policies before the TRPO step, on the query batch: parameters theta'_i,
    their action distributions and the log-probabilities of the query actions."""

    adapted: Params
    dist: Dist
    logp: Tensor


class MAMLTRPO:
    """MAML with a TRPO outer step; ``inner.policy`` holds theta, ``sampler`` runs the episodes."""

    def __init__(
        self,
        inner: InnerLoop,
        sampler: Sampler,
        *,
        episodes_per_task: int = 20,
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
        self.spec = inner.spec
        self.policy = inner.policy
        self.sampler = sampler
        self.episodes_per_task = episodes_per_task
        self.max_kl = max_kl
        self.cg_iters = cg_iters
        self.cg_damping = cg_damping
        self.ls_max_steps = ls_max_steps
        self.ls_backtrack = ls_backtrack
        self.hvp_subsample = hvp_subsample
        #: Meta-SGD's step sizes (meta-learned with theta), or None
        self.inner_lrs: dict[str, Tensor] | None = None
        if self.spec.learn_lr:
            self.inner_lrs = self.spec.init_lrs(named_params(self.policy))
        #: the pre-update episodes of the last :meth:`step` (for diagnostics)
        self.pre_update_episodes: Trajectories | None = None

    @classmethod
    def from_config(cls, cfg: Any, inner: InnerLoop, sampler: Sampler) -> MAMLTRPO:
        """From a ``maml_trpo`` algo config (:class:`metarl.rl.config.MAMLTRPOConfig`)."""
        keys = ("max_kl", "cg_iters", "cg_damping", "ls_max_steps", "ls_backtrack")
        settings = {k: getattr(cfg, k) for k in (*keys, "hvp_subsample", "episodes_per_task")}
        return cls(inner, sampler, **settings)

    # -- Algorithm 3 -----------------------------------------------------------------------------
    def step(self, tasks: list[dict]) -> dict[str, float]:
        meta = self.meta_params()
        t0 = time.perf_counter()
        batch = self.sample(meta, tasks)
        adapt = self.adaptation(batch.support)
        if self._fast_path() and self.hvp_subsample >= 1.0:
            # J^T comes from the curvature's own support graph; theta'_i from the sampling
            adapted, vjp = batch.adapted, None
        else:
            adapted, vjp = torch.func.vjp(adapt, meta)
        with torch.no_grad():
            old_dist = self.policy.dist(adapted, batch.query.obs)
            old = Anchor(adapted, old_dist, self.policy.log_prob(old_dist, batch.query.actions))
        t1 = time.perf_counter()
        hvp, adapt_vjp = self.curvature(meta, batch, adapted, vjp)
        result, old_loss = self.trpo_update(meta, batch.query, old, adapt, adapt_vjp, hvp)
        t2 = time.perf_counter()
        return {
            "return_before": batch.trajs[0].mean_return(),
            "return_after": batch.trajs[-1].mean_return(),
            "kl": result.kl if result else 0.0,
            "surrogate_change": (old_loss - result.loss) if result else 0.0,
            "ls_steps": float(result.steps if result else 0),
            "ls_accepted": float(bool(result and result.accepted)),
            "env_steps": float(sum(t.env_steps for t in batch.trajs)),
            "inner_s": t1 - t0,
            "outer_s": t2 - t1,
        }

    def sample(self, meta: Params, tasks: list[dict]) -> MetaBatch:
        """Support episodes with theta, the inner steps, query episodes with theta'_i."""
        theta, learned = self.split(meta)
        trajs, support, adapted = self.inner.run(
            self.sampler, theta, tasks, self.episodes_per_task, learned=learned
        )
        self.pre_update_episodes = trajs[0]
        return MetaBatch(trajs, support, self.inner.batch(trajs[-1]), adapted)

    def adaptation(self, support: list[PGBatch]) -> Adapt:
        """``meta -> theta'_i`` (stacked over tasks): the inner steps on the stored batches."""

        def adapt(meta: Params) -> Params:
            theta, learned = self.split(meta)
            return self.inner.replay(theta, support, learned)

        return adapt

    def curvature(
        self, meta: Params, batch: MetaBatch, adapted: Params, vjp: Callable | None
    ) -> tuple[Callable[[Tensor], Tensor], VJP]:
        """The damped KL Hessian-vector product in the meta-parameters (on the curvature slice
        of the episodes), and ``w -> J^T w`` on every episode (for the gradient; from ``vjp``,
        the inner steps' vjp on every episode, where given)."""
        support_c = [self._curvature_slice(b) for b in batch.support]
        kl_hvp = kl_hessian_product(self.policy, adapted, self._curvature_slice(batch.query))
        adapt = self.adaptation(batch.support)
        if self._fast_path():  # one plain step: J_i = I - lr * H_i is symmetric
            hvp, adapt_vjp = one_step_kl_hvp(
                lambda p: reinforce_loss(self.policy, p, support_c[0], batched=True).sum(),
                meta,
                batch.query.obs.shape[0],
                self.spec.schedule[0],
                self.spec.first_order,
                kl_hvp,
                self.cg_damping,
            )
            return hvp, (adapt_vjp if vjp is None else _vjp_of(adapt, meta, vjp))
        adapt_vjp = _vjp_of(adapt, meta, vjp)
        adapt_c = self.adaptation(support_c)
        vjp_c = adapt_vjp if self.hvp_subsample >= 1.0 else _vjp_of(adapt_c, meta)
        return meta_kl_hvp(adapt_c, vjp_c, meta, kl_hvp, self.cg_damping), adapt_vjp

    def trpo_update(
        self,
        meta: Params,
        query: PGBatch,
        old: Anchor,
        adapt: Adapt,
        adapt_vjp: VJP,
        hvp: Callable[[Tensor], Tensor],
    ) -> tuple[LineSearchResult | None, float]:
        """The surrogate's gradient through the inner steps, CG for the step direction scaled
        to ``max_kl``, and the backtracking line search (which re-runs the inner steps for each
        candidate); loads the accepted meta-parameters. Returns the search's result (None when
        the curvature gave no direction) and the surrogate before the step."""
        grad_adapted, loss = torch.func.grad_and_value(
            lambda p: surrogate_loss(self.policy, p, query, old.logp)
        )(old.adapted)
        old_loss = float(loss)
        grad = adapt_vjp(grad_adapted)
        full_step = trpo_step_direction(flatten(grad.values()), hvp, self.max_kl, self.cg_iters)
        if full_step is None:
            return None, old_loss

        def evaluate(candidate: Tensor) -> tuple[float, float]:
            new_adapted = adapt(unflatten(candidate, meta))
            loss, kl = surrogate_and_kl(self.policy, new_adapted, query, old.logp, old.dist)
            return float(loss), float(kl)

        with torch.no_grad():
            result = line_search(
                evaluate,
                flatten(meta.values()),
                full_step,
                old_loss,
                self.max_kl,
                self.ls_max_steps,
                self.ls_backtrack,
            )
        self._load(unflatten(result.params, meta))
        return result, old_loss

    # -- meta-parameters -------------------------------------------------------------------------
    def meta_params(self) -> Params:
        """theta (detached), then Meta-SGD's step sizes under ``inner_lr:<name>`` if learned."""
        meta = detach_params(named_params(self.policy))
        for name, lr in (self.inner_lrs or {}).items():
            meta[LR_PREFIX + name] = lr
        return meta

    def split(self, meta: Params) -> tuple[Params, Params | None]:
        """``(theta, learned step sizes or None)`` from the meta-parameters."""
        theta = {k: v for k, v in meta.items() if not k.startswith(LR_PREFIX)}
        if self.inner_lrs is None:
            return theta, None
        return theta, {k[len(LR_PREFIX) :]: v for k, v in meta.items() if k.startswith(LR_PREFIX)}

    def _fast_path(self) -> bool:
        return self.spec.plain and self.spec.steps == 1

    def _load(self, meta: Params) -> None:
        theta, learned = self.split(meta)
        params = named_params(self.policy)
        with torch.no_grad():
            for k, v in theta.items():
                params[k].copy_(v)
        if learned is not None:
            self.inner_lrs = {k: v.clone() for k, v in learned.items()}

    def _curvature_slice(self, batch: PGBatch) -> PGBatch:
        """The first ``ceil(hvp_subsample * episodes)`` episodes of every task (all if 1.0)."""
        if self.hvp_subsample >= 1.0:
            return batch
        episodes = batch.obs.shape[1]
        return batch.first_episodes(max(1, math.ceil(self.hvp_subsample * episodes)))


def _vjp_of(fn: Adapt, meta: Params, vjp: Callable | None = None) -> VJP:
    """``w -> J^T w`` for ``J`` the Jacobian of ``fn`` at ``meta`` (reusing ``vjp`` if given)."""
    if vjp is None:
        _, vjp = torch.func.vjp(fn, meta)
    return lambda w: vjp(w)[0]
