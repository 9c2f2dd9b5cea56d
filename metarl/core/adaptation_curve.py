"""Evaluation of an inner loop: query loss and metrics after 0, 1, ..., S adaptation steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .batching import map_tasks, select_rows
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
    init_state: Any = None,
    rows: Tensor | None = None,
) -> dict[str, Tensor]:
    """``{"loss": [steps + 1, tasks], <metric>: [steps + 1, tasks]}`` on the query sets.

    Row ``k`` is measured after ``k`` calls of ``step_fn`` on the support set (on its examples
    ``rows[task, k]`` if ``rows``, ``[tasks, steps, batch]``, is given), starting from the
    optimizer state ``init_state`` (shared by all tasks, never modified). Nothing keeps a graph
    and the given ``params`` are not modified.
    """
    theta = {k: v.detach() for k, v in params.items()}

    def task(p: Params, s: Any, q: Any, r: Tensor | None) -> dict[str, Tensor]:
        out: list[dict[str, Tensor]] = []
        state = init_state
        for step in range(steps + 1):
            loss, metrics = loss_fn(p, q)
            out.append({"loss": loss, **metrics})
            if step < steps:
                batch = select_rows(s, None if r is None else r[step])
                p, state = step_fn(p, state, batch)
                p = {k: v.detach() for k, v in p.items()}
        return {k: torch.stack([o[k] for o in out]) for k in out[0]}

    with torch.no_grad():
        out = map_tasks(
            task,
            theta,
            support,
            query,
            rows,
            in_dims=(None, 0, 0, None if rows is None else 0),
            mode=mode,
        )
    return {k: v.T.contiguous() for k, v in out.items()}
