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
