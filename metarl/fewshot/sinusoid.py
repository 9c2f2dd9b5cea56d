"""Sinusoid regression tasks (MAML paper): y = A sin(x - phase), A ~ U[0.1, 5],
phase ~ U[0, pi], x ~ U[-5, 5]."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, float(np.pi))
X_RANGE = (-5.0, 5.0)


class SinusoidBatch(NamedTuple):
    """A meta-batch: ``support = (x, y)`` with shapes ``[tasks, shots, 1]``, ``query = (x, y)``
    with ``[tasks, query, 1]``; ``amplitude`` and ``phase`` are ``[tasks]``."""

    support: tuple[Tensor, Tensor]
    query: tuple[Tensor, Tensor]
    amplitude: Tensor
    phase: Tensor


def sinusoid(x: Tensor | np.ndarray, amplitude, phase):
    return (
        amplitude * np.sin(x - phase)
        if isinstance(x, np.ndarray)
        else amplitude * torch.sin(x - phase)
    )


class SinusoidTasks:
    """Sampler of sinusoid tasks; every draw comes from the generator it is given."""

    def sample(
        self, num_tasks: int, shots: int, query: int, rng: np.random.Generator
    ) -> SinusoidBatch:
        amp = rng.uniform(*AMPLITUDE, size=(num_tasks, 1, 1))
        phase = rng.uniform(*PHASE, size=(num_tasks, 1, 1))
        x = rng.uniform(*X_RANGE, size=(num_tasks, shots + query, 1))
        y = sinusoid(x, amp, phase)
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.float32)
        return SinusoidBatch(
            support=(xt[:, :shots], yt[:, :shots]),
            query=(xt[:, shots:], yt[:, shots:]),
            amplitude=torch.as_tensor(amp.reshape(-1), dtype=torch.float32),
            phase=torch.as_tensor(phase.reshape(-1), dtype=torch.float32),
        )
