"""The few-shot meta-batch: support and query images and labels for a stack of tasks."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class FewShotBatch(NamedTuple):
    """A meta-batch of N-way K-shot tasks with Q query images per class.

    ============ ================================= =========
    field        shape                             dtype
    ============ ================================= =========
    support_x    ``[tasks, N*K, C, H, W]``         float32
    support_y    ``[tasks, N*K]`` (labels 0..N-1)  int64
    query_x      ``[tasks, N*Q, C, H, W]``         float32
    query_y      ``[tasks, N*Q]``                  int64
    ============ ================================= =========

    Within a task the class-to-label assignment is a random permutation and the examples are in
    random order. A NamedTuple is a pytree, so ``support`` and ``query`` (``(x, y)`` pairs) go
    straight into ``metarl.core.MAML.meta_loss(batch.support, batch.query)``.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    @property
    def support(self) -> tuple[Tensor, Tensor]:
        return self.support_x, self.support_y

    @property
    def query(self) -> tuple[Tensor, Tensor]:
        return self.query_x, self.query_y

    @property
    def num_tasks(self) -> int:
        return int(self.support_x.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> FewShotBatch:
        """Move to ``device``; ``dtype`` (e.g. float64) applies to the images only."""
        return FewShotBatch(
            self.support_x.to(device=device, dtype=dtype),
            self.support_y.to(device),
            self.query_x.to(device=device, dtype=dtype),
            self.query_y.to(device),
        )
