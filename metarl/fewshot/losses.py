"""Task losses for the core's learners: ``loss_fn(params, (x, y)) -> (loss, {"accuracy": ...})``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from metarl.core import Params, functional

TaskLoss = Callable[[Params, tuple[Tensor, Tensor]], tuple[Tensor, dict[str, Tensor]]]


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    return (logits.argmax(-1) == labels).to(logits.dtype).mean()


def classification_loss(model: nn.Module) -> TaskLoss:
    """Cross-entropy of ``model`` called with ``params`` on one task's ``(x, y)``, and accuracy.

    Works per task in a loop or under ``torch.func.vmap`` (``metarl.core.MAML``, ``Reptile``).
    """
    call = functional(model)

    def loss_fn(params: Params, data: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = data
        logits = call(params, x)
        return F.cross_entropy(logits, y), {"accuracy": accuracy(logits, y)}

    return loss_fn
