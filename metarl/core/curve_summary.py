"""Adaptation curves: a metric after 0, 1, ..., S inner steps, mean and 95% CI over tasks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class AdaptationCurve:
    """``mean[i]``, ``ci95[i]``, ``stderr[i]`` and ``median[i]`` of ``metric`` after
    ``steps[i]`` inner steps (the median shows when a few diverging tasks dominate the mean).

    ``ci95 = 1.96 * stderr`` with ``stderr = std(ddof=1) / sqrt(num_tasks)``, the convention of
    the MAML and Reptile papers' tables.

    ``gain_stderr[i]``: the standard error of the gain from adaptation, the per-task difference
    ``value after steps[i] - value after steps[0]`` (paired: each task against itself, so the
    spread between tasks cancels); 0 for the first point. Whether adapting helps is the gain
    against this, not against ``stderr``. Empty in summaries written before it existed.

    ``values[i][t]``: task ``t``'s own value after ``steps[i]`` inner steps (which tasks a
    mean misses), and ``tasks[t]`` that task's description where the domain has one (a
    meta-RL task dict, as ``metarl evaluate --task-file`` reads it); both empty in summaries
    written before they existed, ``tasks`` also where the domain has none (few-shot).
    """

    metric: str
    steps: list[int]
    mean: list[float]
    ci95: list[float]
    stderr: list[float]
    num_tasks: int
    median: list[float]
    gain_stderr: list[float] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(
    metric: str, values: Tensor, steps: list[int] | None = None, tasks: list[dict] | None = None
) -> AdaptationCurve:
    """Summarise ``values`` shaped ``[len(steps), tasks]`` (one row per number of inner steps),
    column ``t`` being ``tasks[t]`` if given; computed on the CPU in float64 wherever the values
    were computed."""
    values = torch.as_tensor(values).detach().to(device="cpu", dtype=torch.float64)
    if values.dim() != 2:
        raise ValueError(f"values must be [steps, tasks], got shape {tuple(values.shape)}")
    n = values.shape[1]
    if tasks is not None and len(tasks) != n:
        raise ValueError(f"{len(tasks)} task descriptions for {n} tasks' values")
    steps = list(range(values.shape[0])) if steps is None else list(steps)
    mean = values.mean(1)
    std = values.std(1, unbiased=True) if n > 1 else torch.zeros_like(mean)
    stderr = std / math.sqrt(n)
    gains = values - values[:1]
    gain_std = gains.std(1, unbiased=True) if n > 1 else torch.zeros_like(mean)
    return AdaptationCurve(
        metric=metric,
        steps=steps,
        mean=[float(x) for x in mean],
        ci95=[float(1.96 * x) for x in stderr],
        stderr=[float(x) for x in stderr],
        num_tasks=int(n),
        # a diverged task (NaN) counts as the worst value, so the median stays defined
        median=[float(x) for x in values.nan_to_num(nan=math.inf).median(1).values],
        gain_stderr=[float(x) for x in gain_std / math.sqrt(n)],
        values=values.tolist(),
        tasks=[] if tasks is None else list(tasks),
    )
