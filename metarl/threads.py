"""Idle OpenMP threads that sleep instead of spinning, so torch can use every core it is given.

torch's CPU kernels run on an OpenMP team (GNU libgomp). After each parallel region its idle
threads spin for a while before they sleep; on a machine where other work shares the cores
(MuJoCo's stepping threads, a second training run) that spinning takes the CPU the other work
needs. Measured on 2 cores (docs/RESULTS.md, "Threads"): one HalfCheetahVel MAML-TRPO iteration
with 2 torch threads took 19.0 s beside a second such run when idle threads spin, 6.1 s when
they sleep (as fast as 1 thread each), and alone 3.4 s against 6.0 s with 1 thread.

``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep. OpenMP reads it once, when torch's
library loads, so it must be in the environment before ``import torch``: the ``metarl`` command
and the scripts call :func:`sleep_idle_threads` first. This module must not import torch at
load (:func:`torch_threads` imports it when called).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

VARIABLE = "OMP_WAIT_POLICY"


def sleep_idle_threads() -> None:
    """Ask OpenMP for sleeping idle threads (``OMP_WAIT_POLICY=PASSIVE``) unless the user chose
    a policy. Effective only before torch is first imported in this process."""
    os.environ.setdefault(VARIABLE, "PASSIVE")


def idle_threads_sleep() -> bool:
    """Whether idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE`` in the environment)."""
    return os.environ.get(VARIABLE, "").strip().lower() == "passive"


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block, restored after it."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
