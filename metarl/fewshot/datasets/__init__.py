"""Labelled image sets for few-shot learning: Omniglot, MiniImagenet, and a user's own folder,
decoded once and cached as arrays. Entry point: :func:`load_dataset`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..image_set import LabelledImages
from .cache import CacheDir, default_cache_dir
from .folder import load_folder
from .locate import data_root, locate
from .miniimagenet import load_miniimagenet
from .omniglot import load_omniglot

NAMES = ("omniglot", "miniimagenet", "folder")
DEFAULT_IMAGE_SIZE = {"omniglot": 28, "miniimagenet": 84, "folder": 84}


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    image_size: int | tuple[int, int] | None = None,
    cache_dir: CacheDir = None,
    **options: Any,
) -> LabelledImages:
    """Load ``split`` of dataset ``name`` as uint8 images ``[N, H, W, C]`` with labels.

    ``root``: for ``omniglot``/``miniimagenet`` the data root (default ``$METARL_DATA``) holding
    ``<name>/``, or that folder itself; for ``folder`` the image folder ``root/<class>/<image>``.
    ``options``: ``split_scheme`` (omniglot: ``"vinyals"`` or ``"lake"``); ``source``
    (miniimagenet: ``"auto"``, ``"pickle"``, ``"csv"``); ``mode``, ``ratios``, ``seed``,
    ``class_lists`` (folder). ``cache_dir``: default ``$METARL_CACHE`` or ``~/.cache/metarl``;
    ``False`` disables the cache.
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {NAMES}")
    size = DEFAULT_IMAGE_SIZE[name] if image_size is None else image_size
    if name == "folder":
        if root is None:
            raise ValueError("dataset 'folder' needs root=<path to root/<class>/<image>>")
        return load_folder(Path(root), split, size, cache_dir=cache_dir, **options)
    folder = locate(name, root, split)
    if name == "omniglot":
        return load_omniglot(folder, split, image_size=size, cache_dir=cache_dir, **options)
    return load_miniimagenet(folder, split, image_size=size, cache_dir=cache_dir, **options)


__all__ = [
    "NAMES",
    "LabelledImages",
    "data_root",
    "default_cache_dir",
    "load_dataset",
    "load_folder",
    "load_miniimagenet",
    "load_omniglot",
    "locate",
]
