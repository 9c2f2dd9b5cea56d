"""MiniImagenet (Vinyals et al. 2016, Ravi & Larochelle 2017 split: 64 / 16 / 20 classes).

Two layouts under ``root`` are read, for ``split`` in ``train``, ``val``, ``test``:

- Ravi-Larochelle: ``{split}.csv`` with the header ``filename,label`` and an ``images/`` folder
  holding every listed file; images are decoded as RGB and resized (LANCZOS) to ``image_size``
  (84), then cached as arrays (see :mod:`.cache`).
- The common pickle cache ``mini-imagenet-cache-{split}.pkl``: a dict with ``image_data`` (uint8
  ``[N, 84, 84, 3]``) and ``class_dict`` (``{class_name: [row indices]}``).

Pickle can run code when loaded, so only load pickles you trust. As a guard the unpickler here
accepts only numpy arrays, numpy dtypes and builtin containers; anything else is refused.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..image_set import LabelledImages
from .cache import CacheDir, cached, file_fingerprint
from .images import as_size, decode_image

SPLITS = ("train", "val", "test")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: MiniImagenet pickles hold only numpy arrays "
                "and dicts"
            )
        return super().find_class(module, name)


def expected_files(root: Path, split: str) -> str:
    return (
        f"{root / f'mini-imagenet-cache-{split}.pkl'}, or {root / f'{split}.csv'} "
        f"(header 'filename,label') with the images in {root / 'images'}/"
    )


def load_pickle(path: Path, image_size: int | tuple[int, int] = 84) -> LabelledImages:
    """Read a ``mini-imagenet-cache-*.pkl`` (trusted files only; see the module docstring)."""
    try:
        with open(path, "rb") as f:
            blob = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a readable MiniImagenet pickle ({err})") from err
    if not isinstance(blob, dict) or not {"image_data", "class_dict"} <= set(blob):
        keys = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path} must hold a dict with 'image_data' and 'class_dict', got {keys}")
    images = np.asarray(blob["image_data"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{path}: image_data must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}"
        )
    classes = sorted(blob["class_dict"])
    labels = np.full(len(images), -1, dtype=np.int64)
    for label, name in enumerate(classes):
        rows = np.asarray(blob["class_dict"][name], dtype=np.int64)
        if rows.size == 0:
            raise ValueError(f"{path}: class {name!r} lists no images")
        if rows.min() < 0 or rows.max() >= len(images):
            raise ValueError(
                f"{path}: class {name!r} lists row {rows.max()} but image_data has {len(images)}"
            )
        labels[rows] = label
    keep = np.flatnonzero(labels >= 0)
    images, labels = images[keep], labels[keep]
    size = as_size(image_size)
    if images.shape[1:3] != size:
        images = np.stack(
            [decode_image(_png(im), f"{path}[{i}]", "RGB", size) for i, im in enumerate(images)]
        )
    return LabelledImages.from_arrays(images, labels, classes)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def read_csv(path: Path) -> list[tuple[str, str]]:
    """``(filename, label)`` rows of a Ravi-Larochelle split file."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        first = rows[0] if rows else "nothing (empty file)"
        raise ValueError(f"{path}: the first line must be 'filename,label', got {first}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise ValueError(f"{path}:{line}: expected 'filename,label', got {row}")
        out.append((row[0].strip(), row[1].strip()))
    if not out:
        raise ValueError(f"{path} lists no images")
    return out


def load_csv(
    root: Path, split: str, image_size: int | tuple[int, int] = 84, cache_dir: CacheDir = None
) -> LabelledImages:
    """Decode the images listed in ``root/{split}.csv`` from ``root/images/`` (cached)."""
    csv_path, images_dir = root / f"{split}.csv", root / "images"
    size = as_size(image_size)
    rows = read_csv(csv_path)
    fingerprint = {
        "source": file_fingerprint(csv_path),
        "images_dir": file_fingerprint(images_dir),
        "size": size,
    }

    def build() -> LabelledImages:
        classes = sorted({label for _, label in rows})
        index = {c: i for i, c in enumerate(classes)}
        images, labels = [], []
        for filename, label in rows:
            path = images_dir / filename
            if not path.is_file():
                raise FileNotFoundError(f"{csv_path} lists {filename}, but {path} does not exist")
            images.append(decode_image(path, str(path), "RGB", size))
            labels.append(index[label])
        return LabelledImages.from_arrays(np.stack(images), np.asarray(labels), classes)

    return cached(f"miniimagenet-{split}", fingerprint, build, cache_dir)


def load_miniimagenet(
    root: str | Path,
    split: str = "train",
    image_size: int | tuple[int, int] = 84,
    cache_dir: CacheDir = None,
    source: str = "auto",
) -> LabelledImages:
    """MiniImagenet ``split`` from the pickle cache or the CSV layout (``source`` = ``"auto"``
    prefers the pickle when both exist, ``"pickle"`` or ``"csv"`` forces one)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in ("auto", "pickle", "csv"):
        raise ValueError(f"source must be 'auto', 'pickle' or 'csv', got {source!r}")
    root = Path(root)
    pkl = root / f"mini-imagenet-cache-{split}.pkl"
    has_csv = (root / f"{split}.csv").is_file() and (root / "images").is_dir()
    if source in ("auto", "pickle") and pkl.is_file():
        return load_pickle(pkl, image_size)
    if source in ("auto", "csv") and has_csv:
        return load_csv(root, split, image_size, cache_dir)
    raise FileNotFoundError(
        f"MiniImagenet {split} split not found in {root}: expected {expected_files(root, split)}"
    )
