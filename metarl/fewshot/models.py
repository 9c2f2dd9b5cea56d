"""Few-shot models: the MAML paper's Conv4 and an MLP, each a ``features`` trunk and a linear
``head`` (so ANIL adapts ``adapt_prefixes=["head."]`` and ProtoNets embed with ``features``).

Normalisation is written from composite ops, never ``nn.BatchNorm2d`` / ``F.batch_norm``: under
``torch.func.vmap`` the native batch norm gives wrong second-order meta-gradients (off by
4e-3 to 6e-2 relative, measured against the per-task loop and float64 finite differences). ``"batch"`` is transductive: it normalises with the statistics of whatever batch is
passed (the support set while adapting, the query set when judging), as in the MAML and Reptile
papers; there are no running statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

NORMALIZATIONS = ("batch", "group", "none")
POOLINGS = ("stride", "max")


class BatchStatNorm(nn.Module):
    """Transductive batch normalisation: per-channel mean and variance over the batch (and H, W
    for images) of the current input, then a learnable affine. Composite ops only, so exact
    under vmap; the variance is two-pass (the mean of squared deviations), because
    ``E[x^2] - E[x]^2`` in float32 goes negative (then NaN through rsqrt) when the mean is large
    against the spread."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - x.mean(dims, keepdim=True)
        var = (centred * centred).mean(dims, keepdim=True)
        x_hat = centred * torch.rsqrt(var + self.eps)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)


class GroupStatNorm(nn.Module):
    """Group normalisation (per example, over channel groups and H, W) from composite ops, with
    a two-pass variance as :class:`BatchStatNorm`."""

    def __init__(self, num_groups: int, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_features % num_groups:
            raise ValueError(
                f"num_groups={num_groups} must divide the {num_features} channels; pick a divisor"
            )
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        g = x.reshape(n, self.num_groups, -1)
        centred = g - g.mean(-1, keepdim=True)
        var = (centred * centred).mean(-1, keepdim=True)
        x_hat = (centred * torch.rsqrt(var + self.eps)).reshape(x.shape)
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)


def make_norm(normalization: str, channels: int, num_groups: int = 8) -> nn.Module:
    if normalization == "batch":
        return BatchStatNorm(channels)
    if normalization == "group":
        return GroupStatNorm(min(num_groups, channels), channels)
    if normalization == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


class Conv4(nn.Module):
    """Four blocks of 3x3 conv (``filters`` channels), normalisation and ReLU, downsampled by a
    stride-2 conv (``pooling="stride"``, the MAML Omniglot model) or a 2x2 max-pool (``"max"``,
    the MiniImagenet model); the flattened features feed a linear ``head``.

    Input ``[batch, in_channels, H, W]`` with ``(H, W) = image_size``; output logits
    ``[batch, num_classes]``. Features: 28x28 stride -> 64x2x2 = 256; 84x84 max, 32 filters ->
    32x5x5 = 800.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        filters: int = 64,
        pooling: str = "stride",
        normalization: str = "batch",
        image_size: int | tuple[int, int] = 28,
        num_groups: int = 8,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(4):
            stride = 2 if pooling == "stride" else 1
            layers = [
                nn.Conv2d(channels, filters, 3, stride=stride, padding=1),
                make_norm(normalization, filters, num_groups),
                nn.ReLU(),
            ]
            if pooling == "max":
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            channels = filters
        self.features = nn.Sequential(*blocks, nn.Flatten())
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        side = min(h, w)
        for _ in range(4):
            side = (side + 1) // 2 if pooling == "stride" else side // 2
        if side < 1:
            raise ValueError(
                f"image_size {image_size} is too small for four {pooling} downsampling blocks; "
                f"use at least {16 if pooling == 'max' else 1} pixels per side"
            )
        with torch.no_grad():
            dim = self.features(torch.zeros(2, in_channels, h, w)).shape[1]
        self.feature_dim = int(dim)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """``in_features -> hidden... -> out_features`` with ReLU; the last layer is ``head``."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.features = nn.Sequential(*layers)
        self.feature_dim = width
        self.head = nn.Linear(width, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def embedding(model: nn.Module) -> Callable[[Mapping[str, Tensor], Tensor], Tensor]:
    """``embed(params, x)``: the model's ``features`` (before the head) with ``params`` (the
    whole model's parameter dict; ``head.*`` entries are ignored)."""
    if not isinstance(getattr(model, "features", None), nn.Module):
        raise ValueError(f"{type(model).__name__} has no `features` submodule to embed with")
    features = model.features
    prefix = "features."

    def embed(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        own = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        return torch.func.functional_call(features, own, (x,))

    return embed
