"""How a task adapts, written once for both domains: the inner loop's settings and its steps.

=============== ===========================================================================
setting         meaning
=============== ===========================================================================
``lr``          step size: one number, or one per step (a schedule; the last one repeats)
``steps``       gradient steps per task
``first_order`` treat the inner gradients as constants (FOMAML); else keep their graph
``learn_lr``    Meta-SGD: per-parameter step sizes, initialised at the first ``lr`` and
                meta-learned; they are data (``learned``), owned by the meta-learner
``names``       the parameters that adapt (ANIL: the head's); the rest pass through
``optimizer``   ``sgd``, or ``adam`` (first order only, ``betas`` default (0, 0.999) as in
                the Reptile paper): its moments are state threaded from step to step
=============== ===========================================================================

Few-shot MAML (:class:`metarl.core.MAML`), Reptile (:class:`metarl.core.Reptile`) and the
policy-gradient inner loop of meta-RL (:class:`metarl.rl.inner_loop.InnerLoop`) all step with
:meth:`InnerSpec.step` / :meth:`InnerSpec.stateful_step`, so Meta-SGD, ANIL, schedules,
first-order and Adam steps mean the same in both domains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .adapt import AdamState, GradFn, StepSize, adam_step, gradient_step
from .params import Params


@dataclass(frozen=True)
class InnerSpec:
    """The inner loop's settings (see the module docstring); ``names=None`` adapts all."""

    lr: float | tuple[float, ...]
    steps: int = 1
    first_order: bool = False
    learn_lr: bool = False
    names: tuple[str, ...] | None = None
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.0, 0.999)

    def __post_init__(self) -> None:
        lrs = self.schedule
        if not lrs or any(not lr > 0 for lr in lrs):
            raise ValueError(f"inner step sizes must be positive numbers, got {self.lr}")
        if self.steps < 0:
            raise ValueError(f"inner steps must be >= 0, got {self.steps}")
        if self.learn_lr and len(lrs) > 1:
            raise ValueError(
                "learned (Meta-SGD) step sizes are one per parameter for every step; give one "
                f"initial lr, not a schedule {list(lrs)}"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"inner optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.optimizer == "adam" and not (self.first_order and self.plain):
            raise ValueError(
                "Adam inner steps are first order, on every parameter, with one step size: set "
                "first_order, and no learned step sizes, schedule or head-only adaptation"
            )

    @property
    def schedule(self) -> tuple[float, ...]:
        return tuple(self.lr) if isinstance(self.lr, Sequence) else (float(self.lr),)

    @property
    def plain(self) -> bool:
        """One fixed scalar step size for every parameter (no schedule, Meta-SGD or ANIL)."""
        return len(self.schedule) == 1 and not self.learn_lr and self.names is None

    def adapted_names(self, params: Mapping[str, Tensor]) -> list[str]:
        return list(params) if self.names is None else list(self.names)

    def init_lrs(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Meta-SGD's initial per-parameter step sizes (a tensor like each adapted parameter)."""
        first = self.schedule[0]
        return {n: torch.full_like(params[n].detach(), first) for n in self.adapted_names(params)}

    def step_size(self, k: int = 0, learned: Mapping[str, Tensor] | None = None) -> StepSize:
        """Step ``k``'s size: the learned per-parameter tensors, or the schedule's entry."""
        if self.learn_lr:
            if learned is None:
                raise ValueError("learn_lr needs the learned step sizes (init_lrs) to step")
            return dict(learned)
        lrs = self.schedule
        return lrs[min(k, len(lrs) - 1)]

    def step(
        self,
        loss_fn: Callable[[Params], Tensor],
        params: Mapping[str, Tensor],
        k: int = 0,
        learned: Mapping[str, Tensor] | None = None,
        first_order: bool | None = None,
        lr: StepSize | None = None,
    ) -> Params:
        """Inner step number ``k`` (its step size, unless ``lr`` overrides it) on ``loss_fn``."""
        return gradient_step(
            loss_fn,
            params,
            self.step_size(k, learned) if lr is None else lr,
            self.first_order if first_order is None else first_order,
            None if self.names is None else list(self.names),
        )

    def stateful_step(
        self,
        loss_fn: Callable[[Params], Tensor],
        params: Mapping[str, Tensor],
        state: AdamState | None,
        k: int = 0,
        lr: float | None = None,
        grad: GradFn = torch.func.grad,
    ) -> tuple[Params, AdamState | None]:
        """Step ``k`` with the spec's optimizer, threading its state (``None``: fresh; SGD has
        none): :meth:`step` for SGD, one first-order Adam step for Adam. ``grad`` computes the
        gradients of an Adam step (``torch.func.grad`` works under vmap)."""
        if self.optimizer == "adam":
            size = self.step_size(k) if lr is None else lr
            return adam_step(loss_fn, dict(params), state, size, self.betas, grad=grad)
        return self.step(loss_fn, params, k, lr=lr), None

    def adapt(
        self,
        loss_fn: Callable[[Params], Tensor],
        params: Mapping[str, Tensor],
        learned: Mapping[str, Tensor] | None = None,
        steps: int | None = None,
        first_order: bool | None = None,
    ) -> Params:
        """``steps`` (default :attr:`steps`) steps of ``loss_fn`` from ``params``; works per
        vmapped slice too."""
        steps = self.steps if steps is None else steps
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        adapted = dict(params)
        for k in range(steps):
            adapted = self.step(loss_fn, adapted, k, learned, first_order)
        return adapted
