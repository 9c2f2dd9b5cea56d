"""Batches bounded by env steps, as the MAML and ProMP code sample (``sampler.budget: steps``).

Their samplers step every task's envs in lockstep, an env whose episode ends starting the next
at once, until the meta-batch holds ``tasks x episodes x horizon`` env steps in whole episodes
(the episodes still running then are dropped): each task gets about ``episodes x horizon``
steps, and where episodes end early its batch holds more, shorter episodes (cbfinn/maml_rl's
``VectorizedSampler`` with one env per task; ProMP's ``MetaSampler`` with ``episodes`` envs per
task). Here every task gets its own budget: whole episodes up to the first that reaches it.

:func:`fill_to_steps` builds that batch from rectangular rounds: after the first round
(``episodes`` episodes of every task), the tasks short of their budget run another round, of as
many episodes as the neediest of them lacks at its mean episode length so far, until none is
short; each task then keeps its episodes in order up to the first that reaches the budget and
drops the rest. Tasks that keep fewer episodes than others are padded with empty episodes
(``mask`` 0, length 0), which every loss and mean skips
(:meth:`metarl.rl.trajectories.Trajectories.task_mean`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .rollout import Arrays

#: ``run(task_indices, episodes) -> Arrays`` of those tasks, ``episodes`` each
RunRound = Callable[[Sequence[int], int], Arrays]


def fill_to_steps(first: Arrays, steps: int, run: RunRound, tasks: Sequence[dict]) -> Arrays:
    """Each task's episodes of ``first`` and further rounds of ``run``, up to ``steps`` env steps.

    ``first`` holds every task of ``tasks`` (``[tasks, episodes, H, ...]``). Raises when a round
    adds no step to a task short of its budget (its episodes end at once: the simulator's
    rewards are not finite from the first step).
    """
    num_tasks = first["mask"].shape[0]
    # per task: its episodes in order, each (round's arrays, row in that round, episode)
    episodes: list[list[tuple[Arrays, int, int]]] = [[] for _ in range(num_tasks)]
    lengths: list[list[int]] = [[] for _ in range(num_tasks)]

    def add(arrays: Arrays, task_indices: Sequence[int]) -> None:
        per_episode = arrays["mask"].sum(-1).astype(np.int64)  # [rows, episodes]
        for row, task in enumerate(task_indices):
            for e in range(per_episode.shape[1]):
                episodes[task].append((arrays, row, e))
                lengths[task].append(int(per_episode[row, e]))

    add(first, range(num_tasks))
    while True:
        short = [i for i in range(num_tasks) if sum(lengths[i]) < steps]
        if not short:
            break
        need = max(
            math.ceil((steps - sum(lengths[i])) / max(float(np.mean(lengths[i])), 1.0))
            for i in short
        )
        before = [sum(lengths[i]) for i in short]
        add(run(short, need), short)
        stuck = [i for i, b in zip(short, before) if sum(lengths[i]) == b]
        if stuck:
            raise RuntimeError(
                f"{need} more episodes of task {stuck[0]} ({tasks[stuck[0]]!r}) took no env step (each "
                "episode ended at its first step: the simulator's reward was not finite), so "
                f"its batch cannot reach sampler.budget's {steps} steps; check the task's "
                "parameters, or set sampler.budget: episodes"
            )
    kept = [_prefix_reaching(lengths[i], steps) for i in range(num_tasks)]
    if all(k == len(e) == first["mask"].shape[1] for k, e in zip(kept, episodes)):
        return first  # no round added and none dropped (no episode ended early): as sampled
    return _stack(first, [episodes[i][:k] for i, k in enumerate(kept)])


def _prefix_reaching(lengths: Sequence[int], steps: int) -> int:
    """How many leading episodes it takes for their lengths to sum to at least ``steps``."""
    total = 0
    for k, n in enumerate(lengths, start=1):
        total += n
        if total >= steps:
            return k
    return len(lengths)


def _stack(first: Arrays, kept: list[list[tuple[Arrays, int, int]]]) -> Arrays:
    """``[tasks, most episodes kept, longest episode, ...]``, zeros where a task kept fewer."""
    num_episodes = max(len(k) for k in kept)
    horizon = max(arrays["mask"].shape[2] for task in kept for arrays, _, _ in task)
    out = {
        key: np.zeros((len(kept), num_episodes, horizon, *x.shape[3:]), dtype=x.dtype)
        for key, x in first.items()
    }
    for task, task_episodes in enumerate(kept):
        for slot, (arrays, row, e) in enumerate(task_episodes):
            steps = arrays["mask"].shape[2]
            for key, x in out.items():
                x[task, slot, :steps] = arrays[key][row, e]
    return out
