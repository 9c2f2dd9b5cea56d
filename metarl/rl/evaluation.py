"""Adaptation curves on held-out tasks (the MAML paper's figures) and their plot.

For every task: sample episodes with theta and record the mean return (step 0); take a
policy-gradient step on those episodes; sample with the adapted policy and record (step 1); and so
on. The value at step k is the mean return of episodes sampled with the k-step-adapted policy.
Mean and standard error over tasks come from :func:`metarl.core.summarize`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metarl.core import AdaptationCurve, Params, summarize

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
) -> tuple[torch.Tensor, Params]:
    """Mean return per task after 0..``steps`` inner steps, ``[steps + 1, tasks]``, and the
    final adapted (stacked) parameters."""
    params = {k: v.detach() for k, v in params.items()}
    trajs, _, adapted = inner.run(sampler, params, tasks, steps, episodes, rng=rng)
    return torch.stack([t.task_returns() for t in trajs]), adapted


def evaluate_adaptation(
    inner: InnerLoop,
    sampler: Sampler,
    params: Params,
    tasks: list[dict],
    steps: int,
    episodes: int,
    rng: np.random.Generator,
) -> AdaptationCurve:
    """The adaptation curve (metric ``"return"``) on ``tasks``."""
    values, _ = adaptation_returns(inner, sampler, params, tasks, steps, episodes, rng)
    return summarize("return", values)


def plot_curve(
    curve: AdaptationCurve,
    path: Path,
    title: str,
    reference: dict[str, list[float]] | None = None,
) -> Path:
    """Mean return +- standard error against inner steps, as a PNG (Agg backend).

    ``reference`` adds dashed lines, e.g. the paper's numbers ``{"MAML paper": [...]}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    mean, err = np.asarray(curve.mean), np.asarray(curve.stderr)
    ax.errorbar(curve.steps, mean, yerr=err, marker="o", capsize=3, label="this run")
    for name, values in (reference or {}).items():
        ax.plot(
            curve.steps[: len(values)], values[: len(curve.steps)], "--", marker="x", label=name
        )
    ax.set_xlabel("inner gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(curve.steps)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
