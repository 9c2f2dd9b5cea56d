"""A user's own image folder: ``root/<class_name>/<image files>``.

Any PIL-readable format; images are converted to ``mode`` (``"L"`` or ``"RGB"``) and resized
(LANCZOS) to ``image_size``. Hidden entries (names starting with ``.``, ``__MACOSX``) are skipped;
any other file that is not an image is an error naming it. Classes are split into train / val /
test by ``ratios`` with a seeded permutation of the sorted class names, or by explicit lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..image_set import LabelledImages
from .cache import CacheDir, cached, tree_fingerprint
from .images import as_size, decode_image, is_hidden

SPLITS = ("train", "val", "test", "all")


def scan_folder(root: Path) -> dict[str, list[Path]]:
    """``{class_name: [image paths]}``; raises on empty classes and stray files."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} does not exist; expected root/<class>/<image>"
        )
    classes: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if is_hidden(entry.name):
            continue
        if not entry.is_dir():
            raise ValueError(
                f"{entry} is a file at the top of the image folder; expected only class folders "
                "(root/<class>/<image>)"
            )
        files = sorted(f for f in entry.iterdir() if not is_hidden(f.name))
        nested = [f for f in files if f.is_dir()]
        if nested:
            raise ValueError(
                f"{nested[0]} is a folder inside class {entry.name!r}; expected images"
            )
        if not files:
            raise ValueError(f"class folder {entry} has no images; remove it or add images")
        classes[entry.name] = files
    if not classes:
        raise ValueError(f"{root} has no class folders; expected root/<class>/<image>")
    return classes


def split_class_names(
    names: Sequence[str], ratios: Sequence[float], seed: int
) -> dict[str, list[str]]:
    """Split ``names`` into train/val/test by ``ratios`` after a seeded permutation."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    order = np.random.default_rng(seed).permutation(sorted(names))
    n = len(order)
    n_train = int(round(ratios[0] * n))
    n_val = int(round(ratios[1] * n))
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    return {k: sorted(str(c) for c in v) for k, v in parts.items()}


def load_folder(
    root: str | Path,
    split: str = "all",
    image_size: int | tuple[int, int] = 84,
    mode: str = "RGB",
    ratios: Sequence[float] = (0.64, 0.16, 0.20),
    seed: int = 0,
    class_lists: Mapping[str, Sequence[str]] | None = None,
    cache_dir: CacheDir = None,
) -> LabelledImages:
    """The classes of ``split`` from ``root/<class>/<image>`` (decoded once, then cached)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    size = as_size(image_size)
    files = scan_folder(root)
    all_paths = [p for paths in files.values() for p in paths]
    fingerprint = {
        "source": str(root.resolve()),
        "tree": tree_fingerprint(all_paths, root),
        "size": size,
        "mode": mode,
    }

    def build() -> LabelledImages:
        names = sorted(files)
        images, labels = [], []
        for label, name in enumerate(names):
            for path in files[name]:
                images.append(decode_image(path, str(path), mode, size))
                labels.append(label)
        return LabelledImages.from_arrays(np.stack(images), np.asarray(labels), names)

    data = cached("folder", fingerprint, build, cache_dir)
    if split == "all":
        return data
    if class_lists is not None:
        if split not in class_lists:
            raise ValueError(f"class_lists has no {split!r} entry; it has {sorted(class_lists)}")
        chosen = list(class_lists[split])
        missing = [c for c in chosen if c not in files]
        if missing:
            raise ValueError(
                f"the {split!r} class list names {len(missing)} classes with no folder in {root}, "
                f"e.g. {missing[:5]}"
            )
    else:
        chosen = split_class_names(list(files), ratios, seed)[split]
    if not chosen:
        raise ValueError(
            f"the {split!r} split of {root} is empty ({len(files)} classes, ratios {tuple(ratios)})"
        )
    return data.subset(chosen)
