"""TRPO's numerical pieces: flat vectors, Hessian-vector products, conjugate gradient and the
backtracking line search (Schulman et al. 2015, appendix C)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out, i = {}, 0
    for k, t in like.items():
        out[k] = vector[i : i + t.numel()].view_as(t)
        i += t.numel()
    return out


def hessian_vector_product(
    kl: Tensor, params: Sequence[Tensor], damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """``v -> (d^2 kl / d params^2) v + damping * v``, exact (double backward).

    The gradient of ``kl`` is built once with ``create_graph=True``; each product is one more
    backward pass through that graph, so conjugate gradient reuses it for every iteration.
    """
    grads = flatten(torch.autograd.grad(kl, params, create_graph=True))

    def hvp(v: Tensor) -> Tensor:
        h = torch.autograd.grad(grads @ v, params, retain_graph=True)
        return flatten(h).detach() + damping * v

    return hvp


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive definite ``A`` given by ``matvec``."""
    return conjugate_gradient_with_product(matvec, b, iters, tol)[0]


def conjugate_gradient_with_product(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """:func:`conjugate_gradient` that also returns ``A x``, accumulated from the products CG
    already computed (``x = sum_k alpha_k p_k``), so TRPO's step length needs no extra product.
    """
    x = torch.zeros_like(b)
    ax = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        ax = ax + alpha * ap
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, ax


@dataclass(frozen=True)
class LineSearchResult:
    """``accepted``: a step was taken; ``steps``: candidates evaluated; ``loss``/``kl`` of the
    accepted candidate (the old loss and 0 when rejected)."""

    accepted: bool
    steps: int
    loss: float
    kl: float
    params: Tensor


def line_search(
    evaluate: Callable[[Tensor], tuple[float, float]],
    old_params: Tensor,
    full_step: Tensor,
    old_loss: float,
    max_kl: float,
    max_steps: int = 15,
    backtrack: float = 0.8,
) -> LineSearchResult:
    """Try ``old + backtrack**k * full_step`` for k = 0, 1, ...; accept the first candidate whose
    loss is finite and lower than ``old_loss`` and whose KL is finite and at most ``max_kl``.

    ``evaluate(candidate) -> (loss, kl)``. Returns the old parameters if none qualifies.
    """
    for k in range(max_steps):
        candidate = old_params + backtrack**k * full_step
        loss, kl = evaluate(candidate)
        if math.isfinite(loss) and math.isfinite(kl) and loss < old_loss and kl <= max_kl:
            return LineSearchResult(True, k + 1, loss, kl, candidate)
    return LineSearchResult(False, max_steps, old_loss, 0.0, old_params)


def trpo_step_direction(
    grad: Tensor, hvp: Callable[[Tensor], Tensor], max_kl: float, cg_iters: int
) -> Tensor | None:
    """The full step ``-sqrt(2 max_kl / s^T H s) * s`` with ``s = H^{-1} g`` (by CG).

    ``H s`` comes from CG's own products. Returns None when the curvature ``s^T H s`` is not
    positive and finite (no step possible).
    """
    direction, h_direction = conjugate_gradient_with_product(hvp, grad, cg_iters)
    shs = direction @ h_direction
    if not torch.isfinite(shs) or shs <= 0 or not torch.isfinite(direction).all():
        return None
    return -torch.sqrt(2 * max_kl / shs) * direction


def meta_kl_hvp(
    adapt: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    adapt_vjp: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    theta: dict[str, Tensor],
    kl_hvp: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    damping: float = 0.0,
) -> Callable[[Tensor], Tensor]:
    """Exact ``v -> d^2/dtheta^2 KL(pi_old || pi_adapt(theta)) v + damping * v`` at ``theta``.

    With ``phi = adapt(theta)`` and ``J = dphi/dtheta``, the chain rule gives
    ``H_theta = J^T H_phi J + sum_j (dKL/dphi_j) d^2 phi_j/dtheta^2``; the second term vanishes
    because the KL is minimal (zero gradient) at ``phi = phi_old``. So each product is a
    forward-mode ``J v`` (``torch.func.jvp`` through the inner step), ``kl_hvp``, the KL's
    Hessian in the stacked adapted parameters (:func:`metarl.rl.losses.kl_hessian_product`),
    and ``J^T`` by the reusable ``adapt_vjp`` (``w -> J^T w``) -- second-order derivatives
    only, instead of differentiating the inner step's gradient twice. All tasks go through at
    once.
    """

    def hvp(v: Tensor) -> Tensor:
        tangent = unflatten(v, theta)
        _, jv = torch.func.jvp(adapt, (theta,), (tangent,))
        jthjv = adapt_vjp(kl_hvp(jv))
        return flatten([jthjv[k] for k in theta]).detach() + damping * v

    return hvp


def one_step_kl_hvp(
    support_loss: Callable[[dict[str, Tensor]], Tensor],
    theta: dict[str, Tensor],
    num_tasks: int,
    inner_lr: float,
    first_order: bool,
    kl_hvp: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    damping: float = 0.0,
) -> tuple[Callable[[Tensor], Tensor], Callable[[dict[str, Tensor]], Tensor]]:
    """Fast path of :func:`meta_kl_hvp` for one inner step ``phi_i = theta - lr * g_i(theta)``.

    There ``J_i = I - lr * H_i`` is symmetric (``H_i`` the Hessian of task i's support loss), so
    ``H_theta v = sum_i J_i H_KL,i J_i v``. The support gradient (``support_loss`` takes stacked
    ``[tasks, ...]`` parameters and returns the sum of the per-task losses) is built once with
    ``create_graph=True``; every product is then two backward passes through it and one
    ``kl_hvp`` (the KL's Hessian in the stacked adapted parameters,
    :func:`metarl.rl.losses.kl_hessian_product`), all tasks at once. Returns ``(hvp, jt)`` where
    ``jt(w) = sum_i J_i^T w_i`` (for the gradient).
    """
    stacked = {
        k: v.detach().unsqueeze(0).repeat(num_tasks, *[1] * v.dim()).requires_grad_()
        for k, v in theta.items()
    }
    names = list(stacked)
    leaves = [stacked[k] for k in names]
    support_grad = torch.autograd.grad(support_loss(stacked), leaves, create_graph=True)

    def support_hvp(w: list[Tensor]) -> list[Tensor]:
        return list(torch.autograd.grad(support_grad, leaves, w, retain_graph=True))

    def jac(w: list[Tensor]) -> list[Tensor]:  # J_i w_i for every task (J symmetric)
        if first_order:
            return w
        return [a - inner_lr * b for a, b in zip(w, support_hvp(w))]

    def jt(w: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: g.sum(0).detach() for k, g in zip(names, jac([w[k] for k in names]))}

    def hvp(v: Tensor) -> Tensor:
        vs = unflatten(v, theta)
        jv = jac([vs[k].unsqueeze(0).expand_as(stacked[k]) for k in names])
        hjv = kl_hvp(dict(zip(names, jv)))
        out = jac([hjv[k] for k in names])
        return flatten([o.sum(0) for o in out]).detach() + damping * v

    return hvp, jt
