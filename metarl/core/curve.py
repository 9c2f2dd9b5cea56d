"""Evaluation of an inner loop: query loss and metrics after 0, 1, ..., S adaptation steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .batching import map_tasks
from .params import Params

TaskLoss = Callable[[Params, Any], tuple[Tensor, dict[str, Tensor]]]
# one inner step: (params, optimizer state, support) -> (params, state); state may be None
StepFn = Callable[[Params, Any, Any], tuple[Params, Any]]


def adaptation_curve(
    loss_fn: TaskLoss,
    params: Params,
    support: Any,
    query: Any,
    steps: int,
    step_fn: StepFn,
    mode: str = "vmap",
) -> dict[str, Tensor]:
    """``{"loss": [steps + 1, tasks], <metric>: [steps + 1, tasks]}`` on the query sets.

    Row ``k`` is measured after ``k`` calls of ``step_fn`` on the support set. Nothing keeps a
    graph and the given ``params`` are not modified.
    """
    theta = {k: v.detach() for k, v in params.items()}

    def task(p: Params, s: Any, q: Any) -> dict[str, Tensor]:
        rows: list[dict[str, Tensor]] = []
        state = None
        for step in range(steps + 1):
            loss, metrics = loss_fn(p, q)
            rows.append({"loss": loss, **metrics})
            if step < steps:
                p, state = step_fn(p, state, s)
                p = {k: v.detach() for k, v in p.items()}
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    with torch.no_grad():
        out = map_tasks(task, theta, support, query, in_dims=(None, 0, 0), mode=mode)
    return {k: v.T.contiguous() for k, v in out.items()}
