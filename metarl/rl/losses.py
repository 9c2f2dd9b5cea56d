"""Policy-gradient losses on padded trajectories.

Normalisation: every loss is a per-task mean over *valid steps*,
``sum_{episodes, t} (x * mask) / sum_{episodes, t} mask`` (pytorch-maml-rl's ``weighted_mean``
with episode lengths), and batched losses average those per-task values over tasks. Longer
episodes therefore weigh more than short ones, and padding never counts.

Two layouts, as in :mod:`metarl.rl.policies`: a single task (``params`` shared, data
``[E, H, ...]``, scalar loss), or a meta-batch (``params`` stacked, data ``[tasks, E, H, ...]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .policies import Dist, Policy
from .trajectories import PGBatch


def masked_mean(x: Tensor, mask: Tensor, batched: bool) -> Tensor:
    """Mean of ``x`` over valid steps: per task (``[tasks]``) if ``batched``, else a scalar."""
    dims = (1, 2) if batched else (0, 1)
    return (x * mask).sum(dims) / mask.sum(dims).clamp_min(1.0)


def reinforce_loss(
    policy: Policy, params: Mapping[str, Tensor], data: PGBatch, batched: bool = False
) -> Tensor:
    """REINFORCE surrogate ``-(log pi(a|s) * A * mask).sum() / mask.sum()`` (the inner loss)."""
    logp = policy.log_prob(policy.dist(params, data.obs), data.actions)
    return -masked_mean(logp * data.advantages, data.mask, batched)


def lvc_loss(
    policy: Policy, params: Mapping[str, Tensor], data: PGBatch, batched: bool = False
) -> Tensor:
    """ProMP's low-variance curvature (LVC) surrogate ``-E[pi(a|s) / pi_o(a|s) * A]``, one
    likelihood ratio per time step against the sampling policy's fixed ``data.old_logp``.

    At the sampling parameters its gradient is REINFORCE's (so is an inner step on it); its
    Hessian adds the per-step score outer product ``E[sum_t grad log pi_t grad log pi_t^T A_t]``
    (Rothfuss et al. 2019, section 5), and away from them the ratio importance-weights the
    gradient.
    """
    if data.old_logp is None:
        raise ValueError(
            "the LVC loss needs the sampling policy's log-probabilities: build the batch with "
            "InnerLoop.batch(traj, params) (params: the policy that sampled traj)"
        )
    logp = policy.log_prob(policy.dist(params, data.obs), data.actions)
    ratio = torch.exp(logp - data.old_logp.detach())
    return -masked_mean(ratio * data.advantages, data.mask, batched)


#: the inner losses :class:`metarl.rl.inner_loop.InnerLoop` can step on, by name
INNER_LOSSES = {"reinforce": reinforce_loss, "lvc": lvc_loss}


def surrogate_loss(
    policy: Policy, params: Mapping[str, Tensor], data: PGBatch, old_logp: Tensor
) -> Tensor:
    """TRPO's importance-weighted surrogate, ``-E[pi/pi_old * A]``, averaged over tasks.

    ``params`` are the stacked adapted parameters, ``data`` the query batch ``[tasks, E, H]``.
    """
    return _surrogate(policy, policy.dist(params, data.obs), data, old_logp)


def clipped_surrogate_loss(
    policy: Policy,
    params: Mapping[str, Tensor],
    data: PGBatch,
    old_logp: Tensor,
    clip_eps: float,
) -> Tensor:
    """PPO's clipped surrogate ``-E[min(r A, clip(r, 1 - eps, 1 + eps) A)]``, ``r = pi/pi_old``
    (Schulman et al. 2017; ProMP's outer objective), averaged over tasks like
    :func:`surrogate_loss`."""
    ratio = (policy.log_prob(policy.dist(params, data.obs), data.actions) - old_logp).exp()
    adv = data.advantages
    clipped = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    return -masked_mean(clipped, data.mask, batched=True).mean()


def mean_kl(policy: Policy, old_dist: Dist, params: Mapping[str, Tensor], data: PGBatch) -> Tensor:
    """``KL(pi_old || pi_params)`` averaged over valid steps, then over tasks."""
    return _mean_kl(policy, old_dist, policy.dist(params, data.obs), data)


def surrogate_and_kl(
    policy: Policy,
    params: Mapping[str, Tensor],
    data: PGBatch,
    old_logp: Tensor,
    old_dist: Dist,
) -> tuple[Tensor, Tensor]:
    """``(surrogate_loss, mean_kl)`` from one forward pass of the policy (a line-search
    candidate's two numbers)."""
    dist = policy.dist(params, data.obs)
    return _surrogate(policy, dist, data, old_logp), _mean_kl(policy, old_dist, dist, data)


def _surrogate(policy: Policy, dist: Dist, data: PGBatch, old_logp: Tensor) -> Tensor:
    ratio = (policy.log_prob(dist, data.actions) - old_logp).exp()
    return -masked_mean(ratio * data.advantages, data.mask, batched=True).mean()


def _mean_kl(policy: Policy, old_dist: Dist, dist: Dist, data: PGBatch) -> Tensor:
    return masked_mean(policy.kl(old_dist, dist), data.mask, batched=True).mean()


def kl_hessian_product(
    policy: Policy, params: Mapping[str, Tensor], data: PGBatch
) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """``w -> H w``, ``H`` the exact Hessian of ``mean_kl(policy, dist(params), p, data)`` in
    ``p`` at ``p = params`` (stacked ``[tasks, ...]``): the Fisher information of the policy.

    At the old policy the KL's gradient in the distribution parameters is zero, so its Hessian is
    ``J^T M J`` with ``J`` the Jacobian of the distribution parameters (the network outputs) and
    ``M`` the KL's Hessian in them (:meth:`Policy.kl_output_hessian`, diagonal). A product is one
    forward-mode pass (``J w``) and one reverse pass through a graph built once (``J^T``)
    instead of a backward pass through the KL's gradient graph (``scripts/bench_trpo.py``
    compares the two).
    """
    params = {k: v.detach() for k, v in params.items()}

    def outputs(p: dict[str, Tensor]) -> tuple[Tensor, ...]:
        return policy.dist(p, data.obs)

    dist, vjp = torch.func.vjp(outputs, params)
    mask = data.mask
    # masked_mean over each task's valid steps, then the mean over tasks
    weight = (mask / (mask.sum((1, 2), keepdim=True).clamp_min(1.0) * mask.shape[0])).unsqueeze(-1)
    curvature = [m.detach() * weight for m in policy.kl_output_hessian(dist)]

    def product(w: dict[str, Tensor]) -> dict[str, Tensor]:
        _, tangent = torch.func.jvp(outputs, (params,), ({k: w[k] for k in params},))
        (out,) = vjp(tuple(t * c for t, c in zip(tangent, curvature)))
        return out

    return product
