"""Reptile (Nichol, Achiam & Schulman 2018): adapt each task with plain first-order steps, then
move the meta-parameters toward the adapted ones: ``theta += eps * mean_i(phi_i - theta)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .batching import map_tasks
from .curve import adaptation_curve
from .params import Params, named_params

TaskLoss = Callable[[Params, Any], tuple[Tensor, dict[str, Tensor]]]


def sgd_steps(loss_fn: Callable[[Params], Tensor], params: Params, steps: int, lr: float) -> Params:
    """``steps`` first-order SGD steps (no graph kept)."""
    for _ in range(steps):
        grads = torch.func.grad(loss_fn)(params)
        params = {k: (v - lr * grads[k]).detach() for k, v in params.items()}
    return params


AdamState = tuple[int, Params, Params]


def adam_step(
    loss_fn: Callable[[Params], Tensor],
    params: Params,
    state: AdamState | None,
    lr: float,
    betas: tuple[float, float] = (0.0, 0.999),
    eps: float = 1e-8,
) -> tuple[Params, AdamState]:
    """One first-order Adam step; ``state`` is ``None`` for a fresh optimizer."""
    b1, b2 = betas
    if state is None:
        zeros = {k: torch.zeros_like(v) for k, v in params.items()}
        state = (0, zeros, dict(zeros))
    t, m, v = state
    t += 1
    grads = torch.func.grad(loss_fn)(params)
    new, m2, v2 = {}, {}, {}
    for k, p in params.items():
        g = grads[k].detach()
        m2[k] = b1 * m[k] + (1 - b1) * g
        v2[k] = b2 * v[k] + (1 - b2) * g * g
        m_hat = m2[k] / (1 - b1**t)
        v_hat = v2[k] / (1 - b2**t)
        new[k] = (p - lr * m_hat / (v_hat.sqrt() + eps)).detach()
    return new, (t, m2, v2)


def adam_steps(
    loss_fn: Callable[[Params], Tensor],
    params: Params,
    steps: int,
    lr: float,
    betas: tuple[float, float] = (0.0, 0.999),
    eps: float = 1e-8,
) -> Params:
    """``steps`` first-order Adam steps from a fresh state (the Reptile paper uses beta1 = 0)."""
    state = None
    for _ in range(steps):
        params, state = adam_step(loss_fn, params, state, lr, betas, eps)
    return params


def reptile_update(params: Mapping[str, Tensor], adapted: Mapping[str, Tensor], eps: float) -> None:
    """In place: ``theta += eps * (mean over tasks of phi - theta)``; ``adapted`` is stacked."""
    with torch.no_grad():
        for k, p in params.items():
            p.add_(eps * (adapted[k].mean(0) - p))


class Reptile(nn.Module):
    """Reptile over ``model`` with the task loss ``loss_fn(params, data) -> (loss, metrics)``."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: TaskLoss,
        inner_lr: float,
        inner_steps: int,
        inner_optimizer: str = "sgd",
        adam_betas: tuple[float, float] = (0.0, 0.999),
        task_batching: str = "vmap",
    ) -> None:
        super().__init__()
        if inner_lr <= 0:
            raise ValueError(f"inner_lr must be > 0, got {inner_lr}")
        if inner_optimizer not in ("sgd", "adam"):
            raise ValueError(f"inner_optimizer must be 'sgd' or 'adam', got {inner_optimizer!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.inner_lr = float(inner_lr)
        self.inner_steps = inner_steps
        self.inner_optimizer = inner_optimizer
        self.adam_betas = adam_betas
        self.task_batching = task_batching

    def params(self) -> Params:
        return named_params(self.model)

    def adapt(self, params: Params, support: Any, steps: int | None = None) -> Params:
        steps = self.inner_steps if steps is None else steps

        def loss(p: Params) -> Tensor:
            return self.loss_fn(p, support)[0]

        if self.inner_optimizer == "adam":
            return adam_steps(loss, params, steps, self.inner_lr, self.adam_betas)
        return sgd_steps(loss, params, steps, self.inner_lr)

    def inner_step(self, params: Params, state: Any, support: Any) -> tuple[Params, Any]:
        """One step of the inner optimizer (SGD or Adam), for adaptation curves."""

        def loss(p: Params) -> Tensor:
            return self.loss_fn(p, support)[0]

        if self.inner_optimizer == "adam":
            return adam_step(loss, params, state, self.inner_lr, self.adam_betas)
        return sgd_steps(loss, params, 1, self.inner_lr), None

    def adaptation_curve(
        self, support: Any, query: Any, steps: int, mode: str | None = None
    ) -> dict[str, Tensor]:
        """Query loss and metrics after 0..``steps`` inner-optimizer steps, ``[steps + 1, tasks]``."""
        return adaptation_curve(
            self.loss_fn,
            self.params(),
            support,
            query,
            steps,
            self.inner_step,
            mode or self.task_batching,
        )

    def adapt_batch(
        self, support: Any, steps: int | None = None, mode: str | None = None
    ) -> Params:
        theta = {k: v.detach() for k, v in self.params().items()}
        return map_tasks(
            lambda p, s: self.adapt(p, s, steps),
            theta,
            support,
            in_dims=(None, 0),
            mode=mode or self.task_batching,
        )

    def meta_step(self, support: Any, eps: float, mode: str | None = None) -> Params:
        """Adapt to every task, then interpolate theta toward the mean adapted parameters."""
        adapted = self.adapt_batch(support, mode=mode)
        reptile_update(self.params(), adapted, eps)
        return adapted
