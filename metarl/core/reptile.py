"""Reptile (Nichol, Achiam & Schulman 2018): adapt each task with plain first-order steps, then
move the meta-parameters toward the adapted ones: ``theta += eps * mean_i(phi_i - theta)``.

Two details of the authors' code (``openai/supervised-reptile``) that matter with the Adam inner
optimizer are options here:

* **Carried optimizer state** (``carry_optimizer_state=True``): the inner Adam's moments are not
  part of the interpolated parameters. They persist from task to task (tasks of a meta-batch run
  one after another) and across meta-iterations, and test-time adaptation starts from them
  without changing them. A fresh Adam takes ``lr * g / |g|``, a sign step of size ``lr`` for every
  weight, at its first step; with carried moments the step is scaled by a long-run average of
  ``g^2`` instead.
* **Inner mini-batches** (``rows``): step ``k`` of task ``i`` uses the support examples
  ``rows[i, k]`` (the code's inner batches of 10 drawn from 10 "train shots" per class).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from .adapt import AdamState, GradFn, adam_step
from .adaptation_curve import adaptation_curve
from .batching import map_tasks, select_rows
from .inner import InnerSpec
from .params import Params, named_params

TaskLoss = Callable[[Params, Any], tuple[Tensor, dict[str, Tensor]]]


def autograd_grad(loss_fn: Callable[[Params], Tensor]) -> Callable[[Params], Params]:
    """Like ``torch.func.grad`` for plain (not vmapped) calls, through ``torch.autograd``: about
    1.5x faster per call for a small Conv4 step on this machine."""

    def grad(params: Params) -> Params:
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            grads = torch.autograd.grad(loss_fn(leaves), list(leaves.values()))
        return dict(zip(leaves, grads))

    return grad


def sgd_steps(
    loss_fn: Callable[[Params], Tensor],
    params: Params,
    steps: int,
    lr: float,
    grad: GradFn = torch.func.grad,
) -> Params:
    """``steps`` first-order SGD steps (no graph kept)."""
    for _ in range(steps):
        grads = grad(loss_fn)(params)
        params = {k: (v - lr * grads[k]).detach() for k, v in params.items()}
    return params


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
    """Reptile over ``model`` with the task loss ``loss_fn(params, data) -> (loss, metrics)``.

    ``carry_optimizer_state``: keep the inner Adam's moments across tasks, meta-iterations and
    into evaluation, as the authors' code does (module docstring); saved in ``state_dict``.
    Methods taking ``rows`` accept ``[tasks, steps, batch]`` indices into each task's support set:
    inner step ``k`` of task ``i`` then sees only the examples ``rows[i, k]``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: TaskLoss,
        inner_lr: float,
        inner_steps: int,
        inner_optimizer: str = "sgd",
        adam_betas: tuple[float, float] = (0.0, 0.999),
        task_batching: str = "vmap",
        carry_optimizer_state: bool = False,
    ) -> None:
        super().__init__()
        if inner_lr <= 0:
            raise ValueError(f"inner_lr must be > 0, got {inner_lr}")
        if inner_optimizer not in ("sgd", "adam"):
            raise ValueError(f"inner_optimizer must be 'sgd' or 'adam', got {inner_optimizer!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.inner_steps = inner_steps
        self.task_batching = task_batching
        if carry_optimizer_state and inner_optimizer != "adam":
            raise ValueError(
                "carry_optimizer_state needs inner_optimizer='adam' (SGD has no state to carry)"
            )
        self.carry_optimizer_state = carry_optimizer_state
        #: the inner loop in the core's terms (first-order steps of SGD or Adam)
        self.spec = InnerSpec(
            float(inner_lr),
            inner_steps,
            first_order=True,
            optimizer=inner_optimizer,
            betas=adam_betas,
        )
        self.optimizer_state: AdamState | None = None  # the carried state, if any

    def params(self) -> Params:
        return named_params(self.model)

    def get_extra_state(self) -> dict[str, Any]:
        return {"optimizer_state": self.optimizer_state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """The carried state, moved to the parameters' device (it may come from another)."""
        device = next(iter(self.params().values())).device
        self.optimizer_state = pytree.tree_map(
            lambda x: x.to(device) if isinstance(x, Tensor) else x, state["optimizer_state"]
        )

    def start_state(self) -> AdamState | None:
        """The inner optimizer's state at the start of an adaptation (``None`` = fresh)."""
        return self.optimizer_state if self.carry_optimizer_state else None

    def adapt(
        self,
        params: Params,
        support: Any,
        steps: int | None = None,
        rows: Tensor | None = None,
    ) -> Params:
        """``steps`` inner steps from ``params``; ``rows``: ``[steps, batch]`` support indices."""
        return self._inner_loop(params, self.start_state(), support, steps, rows)[0]

    def _inner_loop(
        self,
        params: Params,
        state: Any,
        support: Any,
        steps: int | None,
        rows: Tensor | None,
        grad: GradFn = torch.func.grad,
    ) -> tuple[Params, Any]:
        steps = self.inner_steps if steps is None else steps
        for k in range(steps):
            batch = select_rows(support, None if rows is None else rows[k])
            params, state = self.inner_step(params, state, batch, grad)
        return params, state

    def inner_step(
        self, params: Params, state: Any, support: Any, grad: GradFn = torch.func.grad
    ) -> tuple[Params, Any]:
        """One step of the inner optimizer (SGD or Adam), for adaptation curves."""

        def loss(p: Params) -> Tensor:
            return self.loss_fn(p, support)[0]

        return self.spec.stateful_step(loss, params, state, grad=grad)

    def adaptation_curve(
        self,
        support: Any,
        query: Any,
        steps: int,
        mode: str | None = None,
        rows: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Query loss and metrics after 0..``steps`` inner-optimizer steps, ``[steps + 1, tasks]``.
        Starts from the carried optimizer state (if any) and leaves it unchanged."""
        return adaptation_curve(
            self.loss_fn,
            self.params(),
            support,
            query,
            steps,
            self.inner_step,
            mode or self.task_batching,
            init_state=self.start_state(),
            rows=rows,
        )

    def adapt_batch(
        self,
        support: Any,
        steps: int | None = None,
        mode: str | None = None,
        rows: Tensor | None = None,
    ) -> Params:
        """Adapt theta to every task independently (stacked results); the carried state is read,
        never written."""
        theta = {k: v.detach() for k, v in self.params().items()}
        return map_tasks(
            lambda p, s, r: self.adapt(p, s, steps, r),
            theta,
            support,
            rows,
            in_dims=(None, 0, None if rows is None else 0),
            mode=mode or self.task_batching,
        )

    def meta_step(
        self, support: Any, eps: float, mode: str | None = None, rows: Tensor | None = None
    ) -> Params:
        """Adapt to every task, then interpolate theta toward the mean adapted parameters.

        With ``carry_optimizer_state`` the tasks run one after another, each starting from theta
        and from the optimizer state the previous task left (the authors' code); the state after
        the last task is kept for the next meta-step.
        """
        if self.carry_optimizer_state:
            theta = {k: v.detach() for k, v in self.params().items()}
            state, phis = self.optimizer_state, []
            for i in range(pytree.tree_leaves(support)[0].shape[0]):
                task = pytree.tree_map(lambda t, i=i: t[i], support)
                phi, state = self._inner_loop(
                    theta, state, task, None, None if rows is None else rows[i], autograd_grad
                )
                phis.append(phi)
            self.optimizer_state = state
            adapted = {k: torch.stack([phi[k] for phi in phis]) for k in theta}
        else:
            adapted = self.adapt_batch(support, mode=mode, rows=rows)
        reptile_update(self.params(), adapted, eps)
        return adapted
