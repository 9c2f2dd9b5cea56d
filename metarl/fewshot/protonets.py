"""Prototypical Networks (Snell, Swersky & Zemel 2017): classify query images by the softmax of
negative squared Euclidean distances to the class means (prototypes) of the support embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.core import map_tasks, named_params

from .losses import accuracy
from .models import embedding

EmbedFn = Callable[[Mapping[str, Tensor], Tensor], Tensor]


def prototypes(embeddings: Tensor, labels: Tensor, num_ways: int) -> Tensor:
    """``[num_ways, dim]`` class means of ``embeddings [S, dim]`` with ``labels [S]``."""
    onehot = (labels[:, None] == torch.arange(num_ways, device=labels.device)).to(embeddings.dtype)
    return (onehot.T @ embeddings) / onehot.sum(0)[:, None]


def protonet_loss(
    embed_fn: EmbedFn,
    params: Mapping[str, Tensor],
    support: tuple[Tensor, Tensor],
    query: tuple[Tensor, Tensor],
    num_ways: int,
    embed_jointly: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One task's ProtoNet loss and accuracy (runs per task in a loop or under vmap).

    ``embed_jointly`` passes support and query through the embedding as one batch (one call;
    transductive batch statistics over both, like the original code); otherwise two calls.
    """
    (sx, sy), (qx, qy) = support, query
    if embed_jointly:
        z = embed_fn(params, torch.cat([sx, qx]))
        zs, zq = z[: sx.shape[0]], z[sx.shape[0] :]
    else:
        zs, zq = embed_fn(params, sx), embed_fn(params, qx)
    protos = prototypes(zs, sy, num_ways)
    logits = -((zq[:, None, :] - protos[None, :, :]) ** 2).sum(-1)
    return F.cross_entropy(logits, qy), {"accuracy": accuracy(logits, qy)}


class ProtoNet(nn.Module):
    """ProtoNets over ``model.features``; ``meta_loss`` has the same shape as ``MAML.meta_loss``
    (mean loss over tasks, task-averaged metrics), stepped by any torch optimizer."""

    def __init__(self, model: nn.Module, num_ways: int, task_batching: str = "vmap") -> None:
        super().__init__()
        self.model = model
        self.num_ways = num_ways
        self.task_batching = task_batching
        self.embed = embedding(model)

    def params(self) -> dict[str, Tensor]:
        return named_params(self.model)

    def task_losses(
        self, support: Any, query: Any, mode: str | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-task ``[tasks]`` losses and metrics."""
        return map_tasks(
            lambda p, s, q: protonet_loss(self.embed, p, s, q, self.num_ways),
            self.params(),
            support,
            query,
            in_dims=(None, 0, 0),
            mode=mode or self.task_batching,
        )

    def meta_loss(
        self, support: Any, query: Any, mode: str | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        losses, metrics = self.task_losses(support, query, mode)
        return losses.mean(), {k: v.mean() for k, v in metrics.items()}
