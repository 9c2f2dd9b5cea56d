"""MAML and its family: second-order MAML, first-order MAML, Meta-SGD and ANIL, written once.

A task is two losses: ``loss_fn(params, support)`` to adapt on and ``loss_fn(params, query)`` to
judge the adapted parameters. The meta-loss is the mean query loss after adaptation; its gradient
(through the inner loop, or without the inner loop's second-order term for first-order MAML) is
stepped by any torch optimizer over :meth:`MAML.parameters`.

=========== ============================================================
variant     settings
=========== ============================================================
MAML        ``first_order=False``
FOMAML      ``first_order=True``
Meta-SGD    ``learn_inner_lr=True`` (per-parameter step sizes, meta-learned)
ANIL        ``adapt_prefixes=["head."]`` (only the head adapts)
=========== ============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from .adaptation_curve import adaptation_curve
from .batching import map_tasks
from .inner import InnerSpec
from .params import Params, named_params, select_names

TaskLoss = Callable[[Params, Any], tuple[Tensor, dict[str, Tensor]]]


def _lr_key(name: str) -> str:
    return name.replace(".", "__")


class MAML(nn.Module):
    """Meta-learner over ``model`` with the task loss ``loss_fn(params, data) -> (loss, metrics)``.

    ``data`` is any pytree of tensors; in a meta-batch every leaf has a leading task dimension.
    ``metrics`` is a dict of scalar tensors (e.g. accuracy) averaged over tasks in the output.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: TaskLoss,
        inner_lr: float,
        inner_steps: int = 1,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        adapt_prefixes: Sequence[str] | None = None,
        task_batching: str = "vmap",
    ) -> None:
        super().__init__()
        if inner_lr <= 0:
            raise ValueError(f"inner_lr must be > 0, got {inner_lr}")
        if inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        self.model = model
        self.loss_fn = loss_fn
        self.task_batching = task_batching
        params = named_params(model)
        names = None if adapt_prefixes is None else select_names(params, adapt_prefixes)
        self.inner = InnerSpec(
            lr=float(inner_lr),
            steps=inner_steps,
            first_order=first_order,
            learn_lr=learn_inner_lr,
            names=None if names is None else tuple(names),
        )
        self.inner_lrs: nn.ParameterDict | None = None
        if learn_inner_lr:
            self.inner_lrs = nn.ParameterDict(
                {_lr_key(n): nn.Parameter(v) for n, v in self.inner.init_lrs(params).items()}
            )

    # -- the pieces -------------------------------------------------------------------------
    def params(self) -> Params:
        """The meta-parameters theta (live tensors: gradients flow into the model)."""
        return named_params(self.model)

    def learned_lrs(self) -> dict[str, Tensor] | None:
        """Meta-SGD's per-parameter step sizes (live), or None."""
        if self.inner_lrs is None:
            return None
        return {n: self.inner_lrs[_lr_key(n)] for n in self.inner.adapted_names(self.params())}

    def adapt(
        self,
        params: Params,
        support: Any,
        steps: int | None = None,
        first_order: bool | None = None,
    ) -> Params:
        """Adapt ``params`` to one task's ``support`` data (works per vmapped slice too)."""
        return self.inner.adapt(
            lambda p: self.loss_fn(p, support)[0], params, self.learned_lrs(), steps, first_order
        )

    # -- meta-batch operations ------------------------------------------------------------
    def adapt_batch(
        self,
        support: Any,
        steps: int | None = None,
        first_order: bool | None = None,
        mode: str | None = None,
    ) -> Params:
        """Adapt theta to every task of ``support``; returns stacked ``[tasks, ...]`` params."""
        theta = self.params()
        return map_tasks(
            lambda p, s: self.adapt(p, s, steps, first_order),
            theta,
            support,
            in_dims=(None, 0),
            mode=mode or self.task_batching,
        )

    def meta_loss(
        self, support: Any, query: Any, mode: str | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean query loss after adaptation, and the task-averaged query metrics."""

        def task(params: Params, s: Any, q: Any) -> tuple[Tensor, dict[str, Tensor]]:
            return self.loss_fn(self.adapt(params, s), q)

        losses, metrics = map_tasks(
            task,
            self.params(),
            support,
            query,
            in_dims=(None, 0, 0),
            mode=mode or self.task_batching,
        )
        return losses.mean(), {k: v.mean() for k, v in metrics.items()}

    def adaptation_curve(
        self, support: Any, query: Any, steps: int, mode: str | None = None
    ) -> dict[str, Tensor]:
        """Query loss and metrics after 0..``steps`` first-order inner steps, ``[steps + 1, tasks]``."""
        learned = self.learned_lrs()
        learned = None if learned is None else {k: v.detach() for k, v in learned.items()}

        def step(params: Params, state: Any, s: Any) -> tuple[Params, Any]:
            loss = lambda p: self.loss_fn(p, s)[0]  # noqa: E731
            return self.inner.step(loss, params, 0, learned, first_order=True), None

        return adaptation_curve(
            self.loss_fn, self.params(), support, query, steps, step, mode or self.task_batching
        )
