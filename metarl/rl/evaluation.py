"""Adaptation curves on held-out tasks (the MAML paper's figures): returns after 0..S steps.

For every task: sample episodes with theta and record the mean return (step 0); take a
policy-gradient step on those episodes; sample with the adapted policy and record (step 1); and so
on. The value at step k is the mean return of episodes sampled with the k-step-adapted policy.
The caller summarises them over tasks with :func:`metarl.core.summarize`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metarl.core import Params

from .inner_loop import InnerLoop
from .sampler import Sampler


def adaptation_returns(
    inner: InnerLoop,
    sampler: Sampler,
    params: Params,
    tasks: list[dict],
    steps: int,
    episodes: int,
    rng: np.random.Generator,
    lrs: Sequence[float] | None = None,
) -> tuple[torch.Tensor, Params]:
    """Mean return per task after 0..``steps`` inner steps, ``[steps + 1, tasks]``, and the
    final adapted (stacked) parameters. ``lrs``: step size per step (the last repeats; default
    the inner loop's ``inner_lr``)."""
    params = {k: v.detach() for k, v in params.items()}
    trajs, _, adapted = inner.run(sampler, params, tasks, steps, episodes, rng=rng, lrs=lrs)
    return torch.stack([t.task_returns() for t in trajs]), adapted
