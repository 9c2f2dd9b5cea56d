"""N-way K-shot episodes: the meta-batch (:class:`FewShotBatch`) and its sampler from a labelled
image set (:class:`EpisodeSampler`, vectorised indexing).

Images are held once, sorted by class, as uint8; a meta-batch is one fancy-indexing gather, an
optional rotation per angle, and one conversion to float32. With ``rotations=True`` every class
also appears rotated by 90, 180 and 270 degrees as three *new* classes (the Omniglot protocol of
Santoro et al. 2016 and the MAML paper; use it on the training split only).

Where the batch is built: by default with numpy on the CPU (the fastest there). Given a
``device``, the sampler holds the images as one uint8 tensor on that device and builds every
batch there: the random draws are the same numpy ones (so the same seed gives the same tasks on
any device), and only their small index arrays cross to the device, once per batch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .image_set import LabelledImages


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


class EpisodeSampler:
    """Sample meta-batches of ``num_ways``-way ``num_shots``-shot tasks with ``num_queries``
    query images per class from ``data``.

    Per task: ``num_ways`` distinct classes (rotated copies count as distinct classes), a random
    class-to-label assignment, ``num_shots + num_queries`` distinct images per class split into
    support and query (never overlapping), examples in random order. All randomness comes from the
    ``numpy.random.Generator`` passed to :meth:`sample_tasks`: the same generator state gives the
    same tasks. ``device``: build the batches on that torch device (module docstring); the same
    numbers as the default numpy path.
    """

    def __init__(
        self,
        data: LabelledImages,
        num_ways: int,
        num_shots: int,
        num_queries: int,
        rotations: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value, low in (
            ("num_ways", num_ways, 1),
            ("num_shots", num_shots, 1),
            ("num_queries", num_queries, 0),
        ):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        _, h, w, _ = data.images.shape
        if rotations and h != w:
            raise ValueError(
                f"rotations by 90/270 degrees need square images, got {h}x{w}; "
                "resize to a square size or set rotations=False"
            )
        self.num_ways = int(num_ways)
        self.num_shots = int(num_shots)
        self.num_queries = int(num_queries)
        self.num_rotations = 4 if rotations else 1
        self.base_class_names = data.class_names
        counts = data.class_counts()
        self.num_classes = data.num_classes * self.num_rotations
        if self.num_ways > self.num_classes:
            rot = f" x {self.num_rotations} rotations" if rotations else ""
            raise ValueError(
                f"num_ways={self.num_ways} is larger than the {self.num_classes} classes of this "
                f"split ({data.num_classes} classes{rot}); use fewer ways or a larger split"
            )
        per_class = self.num_shots + self.num_queries
        short = np.flatnonzero(counts < per_class)
        if short.size:
            examples = ", ".join(f"{data.class_names[i]!r} ({counts[i]} images)" for i in short[:5])
            raise ValueError(
                f"num_shots + num_queries = {self.num_shots} + {self.num_queries} = {per_class} "
                f"images per class are needed, but {short.size} classes have fewer: {examples}; "
                "lower num_shots/num_queries or drop those classes"
            )
        if np.all(data.labels[:-1] <= data.labels[1:]):
            self._images = data.images
        else:
            self._images = data.images[np.argsort(data.labels, kind="stable")]
        self._counts = counts.astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._max_count = int(counts.max())
        #: where batches are built (None: numpy on the CPU); the images are copied there once
        self.device = None if device is None else torch.device(device)
        self._device_images: Tensor | None = None
        if self.device is not None:
            self._device_images = torch.from_numpy(np.ascontiguousarray(self._images)).to(
                self.device
            )

    def class_name(self, sampled_class: int) -> str:
        """Readable name of a sampled class id (base class and rotation)."""
        base, rot = divmod(int(sampled_class), self.num_rotations)
        name = self.base_class_names[base]
        return f"{name}@rot{90 * rot}" if self.num_rotations > 1 else name

    def sample_classes(self, num_tasks: int, rng: np.random.Generator) -> np.ndarray:
        """``[num_tasks, num_ways]`` distinct class ids per task; position = label."""
        return np.stack(
            [rng.choice(self.num_classes, self.num_ways, replace=False) for _ in range(num_tasks)]
        )

    def sample_indices(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[tasks, ways, shots + queries]`` distinct image rows per sampled class."""
        base = classes // self.num_rotations
        counts = self._counts[base]
        keys = rng.random((*classes.shape, self._max_count))
        keys[np.arange(self._max_count) >= counts[..., None]] = 2.0  # never picked
        picks = np.argsort(keys, axis=-1)[..., : self.num_shots + self.num_queries]
        return self._starts[base][..., None] + picks

    def sample_tasks(self, num_tasks: int, rng: np.random.Generator) -> FewShotBatch:
        """A :class:`FewShotBatch` of ``num_tasks`` tasks drawn with ``rng``."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                f"{type(rng).__name__}"
            )
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        t, n, k, q = num_tasks, self.num_ways, self.num_shots, self.num_queries
        classes = self.sample_classes(t, rng)
        rows = self.sample_indices(classes, rng)
        labels = np.broadcast_to(np.arange(n)[None, :, None], (t, n, k + q))
        if self.device is not None:
            support_order = rng.permuted(np.broadcast_to(np.arange(n * k), (t, n * k)), axis=1)
            query_order = rng.permuted(np.broadcast_to(np.arange(n * q), (t, n * q)), axis=1)
            return self._gather(classes, rows, labels, support_order, query_order)
        x = self._images[rows]  # [T, N, K+Q, H, W, C]
        if self.num_rotations > 1:
            rot = classes % self.num_rotations
            for angle in (1, 2, 3):
                mask = rot == angle
                if mask.any():
                    x[mask] = np.rot90(x[mask], angle, axes=(2, 3))
        support_order = rng.permuted(np.broadcast_to(np.arange(n * k), (t, n * k)), axis=1)
        query_order = rng.permuted(np.broadcast_to(np.arange(n * q), (t, n * q)), axis=1)
        sx, sy = _flatten(x[:, :, :k], labels[:, :, :k], support_order)
        qx, qy = _flatten(x[:, :, k:], labels[:, :, k:], query_order)
        return FewShotBatch(
            _to_float(sx), torch.from_numpy(sy), _to_float(qx), torch.from_numpy(qy)
        )

    def _gather(
        self,
        classes: np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        support_order: np.ndarray,
        query_order: np.ndarray,
    ) -> FewShotBatch:
        """The batch of the drawn indices, built on :attr:`device` from the images held there:
        per example its image row, rotation and label, moved in one copy; then one gather, the
        rotations (``torch.where``, no host sync) and the conversion to float."""
        k = self.num_shots
        t, n, m = rows.shape
        rotation = np.broadcast_to((classes % self.num_rotations)[:, :, None], (t, n, m))
        per_example = np.stack([rows, rotation, labels])  # [3, T, N, K+Q]
        support = _flatten_indices(per_example[:, :, :, :k], support_order)
        query = _flatten_indices(per_example[:, :, :, k:], query_order)
        index = torch.from_numpy(np.concatenate([support, query], axis=2)).to(self.device)
        image_rows, rotation_t, label = index  # each [T, N*K + N*Q]
        x = self._device_images[image_rows]  # [T, M, H, W, C]
        if self.num_rotations > 1:
            for angle in (1, 2, 3):
                turned = torch.rot90(x, angle, dims=(2, 3))
                x = torch.where((rotation_t == angle)[:, :, None, None, None], turned, x)
        x = x.to(torch.float32).mul_(_SCALE).permute(0, 1, 4, 2, 3)  # [T, M, C, H, W]
        split = support.shape[2]
        return FewShotBatch(
            x[:, :split].contiguous(),
            label[:, :split].contiguous(),
            x[:, split:].contiguous(),
            label[:, split:].contiguous(),
        )


def _flatten(x: np.ndarray, y: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = x.shape[0]
    x = x.reshape(t, -1, *x.shape[3:])
    y = y.reshape(t, -1)
    rows = np.arange(t)[:, None]
    return x[rows, order], np.ascontiguousarray(y[rows, order], dtype=np.int64)


def _flatten_indices(per_example: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``[F, T, N, E]`` per-example fields -> ``[F, T, N*E]`` in each task's example ``order``
    (the same arrangement :func:`_flatten` gives the images)."""
    f, t = per_example.shape[:2]
    flat = per_example.reshape(f, t, -1)
    return np.ascontiguousarray(flat[:, np.arange(t)[:, None], order], dtype=np.int64)


# the float32 factor both paths scale uint8 pixels by (a multiplication, not a division by 255,
# so that the device path gives bit-identical images)
_SCALE = float(np.float32(1 / 255))


def _to_float(x: np.ndarray) -> torch.Tensor:
    """uint8 ``[T, M, H, W, C]`` -> float32 ``[T, M, C, H, W]`` in [0, 1]."""
    # numpy, not torch: on few cores torch's uint8->float conversion of a permuted view was
    # ~200x slower here (40 ms vs 0.2 ms for 32 Omniglot tasks).
    scaled = np.multiply(x.transpose(0, 1, 4, 2, 3), np.float32(_SCALE), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(scaled))


def inner_batches(
    num_tasks: int, num_examples: int, batch_size: int, steps: int, rng: np.random.Generator
) -> torch.Tensor:
    """``[num_tasks, steps, batch_size]`` rows of each task's support set for mini-batch inner
    steps: the rows in a fresh random order, epoch after epoch, cut into consecutive batches (a
    batch may span two epochs), as the Reptile code's ``_mini_batches`` draws them."""
    if batch_size < 1 or steps < 0:
        raise ValueError(f"batch_size must be >= 1 and steps >= 0, got {batch_size}, {steps}")
    epochs = -(-steps * batch_size // num_examples)
    order = rng.permuted(
        np.broadcast_to(np.arange(num_examples), (num_tasks, epochs, num_examples)), axis=2
    )
    rows = order.reshape(num_tasks, -1)[:, : steps * batch_size]
    return torch.from_numpy(np.ascontiguousarray(rows.reshape(num_tasks, steps, batch_size)))
