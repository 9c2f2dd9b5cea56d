"""The linear feature baseline of the MAML and TRPO code, fitted for all tasks at once.

Features per step: ``[obs, obs^2, t, t^2, t^3, 1]`` with ``t = step / 100`` (observations clipped
to [-10, 10], as in rllab's ``LinearFeatureBaseline``). For every task a ridge regression of the
discounted returns on the features of that task's valid steps is solved in closed form,
``(X^T X + reg I) w = X^T y``, with one batched ``torch.linalg.solve`` in float64. Tasks whose
system is singular (or whose solution is not finite) are re-solved with ``reg`` multiplied by 10,
up to five times.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.threads import torch_threads


def baseline_features(obs: Tensor, mask: Tensor) -> Tensor:
    """Features ``[..., H, 2 * obs + 4]`` of observations ``[..., H, obs]`` (zero where masked)."""
    horizon = obs.shape[-2]
    obs = obs.clamp(-10.0, 10.0)
    t = (
        (torch.arange(horizon, dtype=obs.dtype, device=obs.device) / 100.0)
        .view(horizon, 1)
        .expand(*obs.shape[:-1], 1)
    )
    ones = torch.ones_like(t)
    feats = torch.cat([obs, obs.pow(2), t, t.pow(2), t.pow(3), ones], -1)
    return feats * mask.unsqueeze(-1)


def _solve(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Batched ``solve_ex`` on one torch thread. With more threads MKL's batched LU here (torch
    2.13, CPU) reported rank-deficient but regularised systems as singular and left pivots that
    made ``solve_ex`` raise (Ant's features, where contact forces are zero columns); on one
    thread the same systems solve. The systems are small (``F`` = 2 x obs + 4)."""
    with torch_threads(1):
        return torch.linalg.solve_ex(a, b)


def fit_linear_baseline(
    obs: Tensor, returns: Tensor, mask: Tensor, reg_coeff: float = 1e-5, max_tries: int = 5
) -> Tensor:
    """Per-task weights ``[tasks, F]``; ``obs [tasks, E, H, o]``, ``returns [tasks, E, H]``."""
    feats = baseline_features(obs, mask).double().flatten(1, 2)  # [tasks, E*H, F]
    targets = (returns * mask).double().flatten(1, 2)
    xtx = feats.transpose(1, 2) @ feats
    xty = (feats.transpose(1, 2) @ targets.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype, device=xtx.device)
    reg = torch.full((xtx.shape[0],), float(reg_coeff), dtype=xtx.dtype, device=xtx.device)
    weights = torch.zeros_like(xty)
    todo = torch.ones(xtx.shape[0], dtype=torch.bool, device=xtx.device)
    for _ in range(max_tries + 1):
        idx = todo.nonzero().squeeze(1)
        w, info = _solve(xtx[idx] + reg[idx, None, None] * eye, xty[idx])
        ok = (info == 0) & torch.isfinite(w).all(-1)
        weights[idx[ok]] = w[ok]
        todo[idx[ok]] = False
        if not todo.any():
            break
        reg[todo] = torch.where(reg[todo] > 0, reg[todo] * 10.0, torch.full_like(reg[todo], 1e-8))
    return weights  # tasks that never solved keep zero weights (baseline 0)


def linear_baseline_values(
    obs: Tensor, returns: Tensor, mask: Tensor, reg_coeff: float = 1e-5
) -> Tensor:
    """Fit the baseline on these episodes and return its values ``[tasks, E, H]`` on them."""
    weights = fit_linear_baseline(obs, returns, mask, reg_coeff)
    feats = baseline_features(obs, mask).double()
    values = torch.einsum("tehf,tf->teh", feats, weights)
    return values.to(obs.dtype) * mask
