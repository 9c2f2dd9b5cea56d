"""Where a few-shot experiment's tasks come from: sinusoid functions or image episodes.

A source gives a meta-batch as ``(support, query)`` pytrees with a leading task dimension (what
the core's learners take), on its ``device``, the task loss for a model, and the metric it is
judged by. Every random draw comes from the numpy generator a caller passes, whatever the device.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from metarl.core import CPU, functional

from .config import FewShotConfig
from .datasets import load_dataset
from .episodes import EpisodeSampler
from .image_set import LabelledImages
from .losses import classification_loss
from .sinusoid import SinusoidTasks

Pair = tuple[Tensor, Tensor]


class TaskSource(Protocol):
    metric: str  # "mse" (lower is better) or "accuracy"
    device: torch.device  # where the batches are

    def sample(
        self,
        n: int,
        split: str,
        rng: np.random.Generator,
        query: int | None = None,
        shots: int | None = None,
    ) -> tuple[Pair, Pair]: ...

    def loss_fn(self, model: nn.Module) -> Any: ...


def mse_loss(model: nn.Module):
    """``loss_fn(params, (x, y)) -> (mse, {"mse": mse})`` for regression tasks."""
    f = functional(model)

    def loss(params: dict[str, Tensor], data: Pair):
        x, y = data
        mse = ((f(params, x) - y) ** 2).mean()
        return mse, {"mse": mse}

    return loss


class SinusoidSource:
    """Sinusoid regression; every split draws from the same distribution (its own stream)."""

    metric = "mse"

    def __init__(self, cfg: FewShotConfig, device: torch.device = CPU) -> None:
        self.cfg = cfg
        self.device = device
        self.tasks = SinusoidTasks()

    def sample(self, n, split, rng, query=None, shots=None):
        t = self.cfg.task
        b = self.tasks.sample(n, shots or t.shots, query or t.query, rng)
        # drawn and computed on the host (numpy, float64) as always; a few hundred numbers move
        return pytree.tree_map(lambda x: x.to(self.device), (b.support, b.query))

    def loss_fn(self, model: nn.Module):
        return mse_loss(model)


class EpisodeSource:
    """N-way K-shot episodes over an image dataset's class splits (loaded on first use).

    Rotations by 90/180/270 degrees become new classes on the training split only (Omniglot
    protocol); validation and test classes are never rotated. On a device other than the CPU
    each split's images are held there once and the batches built there
    (:class:`~metarl.fewshot.episodes.EpisodeSampler`).
    """

    metric = "accuracy"

    def __init__(self, cfg: FewShotConfig, device: torch.device = CPU) -> None:
        self.cfg = cfg
        self.device = device
        self._samplers: dict[tuple[str, int, int], EpisodeSampler] = {}
        self._data: dict[str, LabelledImages] = {}

    def data(self, split: str) -> LabelledImages:
        if split not in self._data:
            t = self.cfg.task
            options: dict[str, Any] = {}
            if t.name == "omniglot":
                options["split_scheme"] = t.split
            if t.name == "folder":
                options.update(
                    ratios=t.split_ratios,
                    seed=self.cfg.seed,
                    mode="L" if t.channels == 1 else "RGB",
                )
            root = t.folder if t.name == "folder" else t.data_root
            self._data[split] = load_dataset(
                t.name, root, split, t.image_size, cache_dir=t.cache_dir, **options
            )
        return self._data[split]

    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images the model sees."""
        return self.data("train").image_shape

    def sampler(self, split: str, query: int, shots: int | None = None) -> EpisodeSampler:
        t = self.cfg.task
        key = (split, shots or t.shots, query)
        if key not in self._samplers:
            rotations = t.rotations and split == "train"
            on = None if self.device.type == "cpu" else self.device  # numpy is fastest on a CPU
            self._samplers[key] = EpisodeSampler(
                self.data(split), t.ways, key[1], query, rotations, device=on
            )
        return self._samplers[key]

    def sample(self, n, split, rng, query=None, shots=None):
        batch = self.sampler(split, query or self.cfg.task.query, shots).sample_tasks(n, rng)
        return batch.support, batch.query

    def loss_fn(self, model: nn.Module):
        return classification_loss(model)


def build_source(cfg: FewShotConfig, device: torch.device = CPU) -> SinusoidSource | EpisodeSource:
    if cfg.task.name == "sinusoid":
        return SinusoidSource(cfg, device)
    return EpisodeSource(cfg, device)


def build_model(cfg: FewShotConfig, source: SinusoidSource | EpisodeSource) -> nn.Module:
    """The configured network on the source's device, initialised from the config's seed
    without touching global RNG (on the CPU, so the same seed gives the same weights on any
    device)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = _network(cfg, source)
    return model.to(source.device)


def _network(cfg: FewShotConfig, source: SinusoidSource | EpisodeSource) -> nn.Module:
    from .models import MLP, Conv4

    m = cfg.model
    if isinstance(source, SinusoidSource):
        return MLP(1, m.hidden_sizes, 1)
    c, h, w = source.image_shape()
    if m.name == "mlp":
        return nn.Sequential(nn.Flatten(-3), MLP(c * h * w, m.hidden_sizes, cfg.task.ways))
    return Conv4(c, cfg.task.ways, m.filters, m.pooling, m.normalization, (h, w))
