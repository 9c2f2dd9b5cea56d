"""Run one function over the tasks of a meta-batch: a Python loop, or ``torch.func.vmap``.

Both give the same numbers (tested to 1e-5); which is faster depends on the model and the data
size (measured on 2 CPU cores: vmap wins with small query sets, the loop with large ones), so the
choice is a setting, and ``"auto"`` is resolved by timing both on the first real batch
(:func:`choose_task_batching`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

TaskBatching = Literal["auto", "vmap", "loop"]
MODES = ("auto", "vmap", "loop")


def _batch_size(args: Sequence[Any], in_dims: Sequence[int | None]) -> int:
    for arg, dim in zip(args, in_dims):
        if dim is not None:
            leaves = [t for t in pytree.tree_leaves(arg) if t is not None]
            if leaves:
                return int(leaves[0].shape[dim])
    raise ValueError("map_tasks needs at least one argument with a task dimension (in_dims 0)")


def select_rows(data: Any, rows: Tensor | None) -> Any:
    """The examples ``rows`` (a 1-D index tensor) of every tensor in ``data``; all if ``None``."""
    if rows is None:
        return data
    return pytree.tree_map(lambda t: t[rows], data)


def map_tasks(
    fn: Callable[..., Any],
    *args: Any,
    in_dims: Sequence[int | None],
    mode: str = "vmap",
) -> Any:
    """Apply ``fn`` to every task and stack its outputs along a new leading dimension.

    Arguments whose ``in_dims`` entry is 0 carry a leading task dimension (pytrees of tensors are
    fine; their ``None`` leaves, absent optional fields, pass through unmapped); ``None``
    arguments are shared by all tasks.
    """
    if len(args) != len(in_dims):
        raise ValueError(f"map_tasks got {len(args)} arguments but {len(in_dims)} in_dims")
    if mode == "vmap":
        leaf_dims = tuple(
            dim if dim is None else pytree.tree_map(lambda t, d=dim: None if t is None else d, arg)
            for arg, dim in zip(args, in_dims)
        )
        return torch.func.vmap(fn, in_dims=leaf_dims)(*args)
    if mode != "loop":
        raise ValueError(f"task batching must be 'vmap' or 'loop' here, got {mode!r}")
    n = _batch_size(args, in_dims)
    outs = []
    for i in range(n):
        task_args = [
            arg if dim is None else pytree.tree_map(lambda t, i=i: None if t is None else t[i], arg)
            for arg, dim in zip(args, in_dims)
        ]
        outs.append(fn(*task_args))
    flat, spec = zip(*(pytree.tree_flatten(o) for o in outs))
    stacked = [torch.stack(leaves) for leaves in zip(*flat)]
    return pytree.tree_unflatten(stacked, spec[0])


def choose_task_batching(
    run: Callable[[str], None],
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[str, dict[str, float]]:
    """Time ``run(mode)`` for ``"vmap"`` and ``"loop"``; return the faster mode and the timings.

    ``run`` should perform one full meta-iteration's computation (forward and backward) on a real
    batch without changing any state. After one warm-up call each, the modes are timed in turn
    (interleaved, so a burst of load elsewhere hits both) and each keeps its fastest time: the
    minimum is the estimate least disturbed by other processes on a shared machine. ``clock``
    reads the time (tests pass a fake one).
    """
    modes = ("vmap", "loop")
    for mode in modes:
        run(mode)
    timings = {mode: float("inf") for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            start = clock()
            run(mode)
            timings[mode] = min(timings[mode], clock() - start)
    return min(timings, key=timings.__getitem__), timings
