"""One inner gradient step on a task's support loss (the inner loop's settings and its steps:
:mod:`metarl.core.inner`).

``gradient_step`` is written with ``torch.func.grad`` so the same code runs per task in a Python loop and
for a whole meta-batch under ``torch.func.vmap``. Second order keeps the graph of the inner
gradients (the meta-gradient flows through them); first order treats them as constants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .params import Params

LossFn = Callable[[Params, object], Tensor]
StepSize = float | Mapping[str, Tensor]
GradFn = Callable[[Callable[[Params], Tensor]], Callable[[Params], Params]]
AdamState = tuple[int, Params, Params]  # (steps taken, first moments, second moments)


def gradient_step(
    loss_fn: Callable[[Params], Tensor],
    params: Mapping[str, Tensor],
    lr: StepSize,
    first_order: bool = False,
    names: list[str] | None = None,
) -> Params:
    """One step ``params - lr * grad(loss_fn)(params)`` on the parameters in ``names``.

    ``lr`` is a float or a dict of per-parameter step-size tensors (Meta-SGD). Parameters not in
    ``names`` are passed through unchanged (ANIL adapts the head only).
    """
    names = list(params) if names is None else names
    frozen = {k: v for k, v in params.items() if k not in names}
    active = {k: params[k] for k in names}

    def loss_of_active(active_params: Params) -> Tensor:
        return loss_fn({**frozen, **active_params})

    grads = torch.func.grad(loss_of_active)(active)
    new = dict(params)
    for k in names:
        g = grads[k].detach() if first_order else grads[k]
        step = lr[k] if isinstance(lr, Mapping) else lr
        new[k] = params[k] - step * g
    return new


def adam_step(
    loss_fn: Callable[[Params], Tensor],
    params: Params,
    state: AdamState | None,
    lr: float,
    betas: tuple[float, float] = (0.0, 0.999),
    eps: float = 1e-8,
    grad: GradFn = torch.func.grad,
) -> tuple[Params, AdamState]:
    """One first-order Adam step; ``state`` is ``None`` for a fresh optimizer."""
    b1, b2 = betas
    if state is None:
        zeros = {k: torch.zeros_like(v) for k, v in params.items()}
        state = (0, zeros, dict(zeros))
    t, m, v = state
    t += 1
    grads = grad(loss_fn)(params)
    new, m2, v2 = {}, {}, {}
    for k, p in params.items():
        g = grads[k].detach()
        m2[k] = b1 * m[k] + (1 - b1) * g
        v2[k] = b2 * v[k] + (1 - b2) * g * g
        m_hat = m2[k] / (1 - b1**t)
        v_hat = v2[k] / (1 - b2**t)
        new[k] = (p - lr * m_hat / (v_hat.sqrt() + eps)).detach()
    return new, (t, m2, v2)
