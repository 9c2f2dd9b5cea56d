"""A labelled image set held in memory: the common form every dataset loader returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelledImages:
    """``images`` uint8 ``[num_images, H, W, C]``, ``labels`` int64 ``[num_images]`` in
    ``0..len(class_names)-1``, and one name per class (e.g. ``"Greek/character03"``).

    Every class has at least one image. Use :meth:`from_arrays` to build one from
    ``[num_images, H, W]`` grayscale arrays or unchecked labels.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    @classmethod
    def from_arrays(
        cls, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None
    ) -> LabelledImages:
        """Validate and normalise: add a channel axis to grayscale, check labels and classes."""
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(
                f"images must be [num_images, H, W] or [num_images, H, W, C], got {images.shape}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must be [num_images] = [{images.shape[0]}], got shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        labels = labels.astype(np.int64)
        num_classes = int(labels.max()) + 1 if labels.size else 0
        if class_names is None:
            class_names = [str(i) for i in range(num_classes)]
        class_names = tuple(str(c) for c in class_names)
        if labels.size and labels.min() < 0:
            raise ValueError(f"labels must be >= 0, got minimum {labels.min()}")
        if num_classes > len(class_names):
            raise ValueError(
                f"labels go up to {num_classes - 1} but only {len(class_names)} class names given"
            )
        counts = np.bincount(labels, minlength=len(class_names))
        empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(f"classes without images: {empty[:10]} ({len(empty)} in all)")
        return cls(images, labels, class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``, the shape of one image as the models see it."""
        _, h, w, c = self.images.shape
        return c, h, w

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, class_names: Sequence[str]) -> LabelledImages:
        """The images of ``class_names`` (in that order), relabelled ``0..len(class_names)-1``."""
        index = {name: i for i, name in enumerate(self.class_names)}
        missing = [c for c in class_names if c not in index]
        if missing:
            raise ValueError(
                f"{len(missing)} requested classes are not in this dataset, e.g. {missing[:5]}; "
                f"it has {self.num_classes} classes, e.g. {list(self.class_names[:3])}"
            )
        old = np.array([index[c] for c in class_names], dtype=np.int64)
        remap = np.full(self.num_classes, -1, dtype=np.int64)
        remap[old] = np.arange(len(old))
        new_labels = remap[self.labels]
        keep = new_labels >= 0
        order = np.argsort(new_labels[keep], kind="stable")
        rows = np.flatnonzero(keep)[order]
        return LabelledImages(self.images[rows], new_labels[rows], tuple(class_names))


def concatenate(parts: Sequence[LabelledImages]) -> LabelledImages:
    """Join image sets with disjoint class names; labels are offset to stay unique."""
    if not parts:
        raise ValueError("concatenate needs at least one LabelledImages")
    names: list[str] = []
    labels = []
    offset = 0
    for part in parts:
        labels.append(part.labels + offset)
        names.extend(part.class_names)
        offset += part.num_classes
    if len(set(names)) != len(names):
        raise ValueError("concatenate: the parts share class names; they must be disjoint")
    shapes = {p.images.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"concatenate: parts have different image shapes {sorted(shapes)}")
    images = np.concatenate([p.images for p in parts])
    return LabelledImages(images, np.concatenate(labels), tuple(names))
