"""Omniglot (Lake et al. 2015) from the official zips or their extracted folders.

Layout under ``root``: ``images_background.zip`` and ``images_evaluation.zip`` (or the folders
``images_background/`` and ``images_evaluation/``), each ``<subset>/<Alphabet>/characterNN/*.png``.
Images are converted to grayscale, resized with LANCZOS (28x28 by default) and inverted, so strokes
are 255 (1.0 after scaling) on a 0 background. Class names are ``"<Alphabet>/characterNN"``.

Class splits:

- ``"vinyals"``: the 1,028 / 172 / 423 character split of Vinyals et al. 2016 (``train``, ``val``,
  ``test``, or ``train+val``), from ``metarl/fewshot/splits/vinyals_*.json``;
- ``"lake"``: ``train`` = the background set (964 characters), ``test`` = the evaluation set (659);
  it has no ``val``.
"""

from __future__ import annotations

import json
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..image_set import LabelledImages, concatenate
from .cache import CacheDir, cached, file_fingerprint, tree_fingerprint
from .images import as_size, decode_image, is_hidden

SUBSETS = ("background", "evaluation")
SPLIT_SCHEMES = ("vinyals", "lake")
SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"
EXPECTED = "images_background.zip and images_evaluation.zip (or the extracted folders)"


def _group(names: list[str], subset: str, source: str) -> dict[str, list[str]]:
    """``{"Alphabet/characterNN": [member names]}`` from paths ``images_<subset>/A/C/file``."""
    groups: dict[str, list[str]] = defaultdict(list)
    prefix = f"images_{subset}/"
    for name in names:
        if name.endswith("/") or is_hidden(name):
            continue
        if not name.startswith(prefix):
            raise ValueError(
                f"{source}: unexpected entry {name!r}; expected {prefix}<Alphabet>/..."
            )
        parts = name[len(prefix) :].split("/")
        if len(parts) != 3:
            raise ValueError(
                f"{source}: {name!r} is not at {prefix}<Alphabet>/<characterNN>/<image>"
            )
        groups[f"{parts[0]}/{parts[1]}"].append(name)
    if not groups:
        raise ValueError(f"{source} holds no images under {prefix}<Alphabet>/<characterNN>/")
    return groups


def _build(groups: dict[str, list[str]], read, size: tuple[int, int]) -> LabelledImages:
    classes = sorted(groups)
    images, labels = [], []
    for label, cls in enumerate(classes):
        for name in sorted(groups[cls]):
            images.append(decode_image(read(name), name, "L", size))
            labels.append(label)
    array = 255 - np.stack(images)  # invert: strokes 255, background 0
    return LabelledImages(array, np.asarray(labels, dtype=np.int64), tuple(classes))


def _from_zip(path: Path, subset: str, size: tuple[int, int]) -> LabelledImages:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"{path} is not a readable zip ({err}); it may be truncated or corrupt: replace it "
            "with the official images_*.zip (check it with SHA256SUMS)"
        ) from err
    with archive:
        groups = _group(archive.namelist(), subset, str(path))

        def read(name: str) -> bytes:
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise ValueError(
                    f"{path}: member {name} is corrupt ({err}); replace the zip"
                ) from err

        return _build(groups, read, size)


def _folder_files(folder: Path) -> list[str]:
    names = []
    for alphabet in sorted(folder.iterdir()):
        if is_hidden(alphabet.name):
            continue
        for char in sorted(alphabet.iterdir()) if alphabet.is_dir() else [alphabet]:
            if is_hidden(char.name):
                continue
            files = [f for f in char.iterdir() if not is_hidden(f.name)] if char.is_dir() else []
            if not files:
                raise ValueError(
                    f"{char} is empty or not a folder: expected the character's images"
                )
            names.extend(str(f.relative_to(folder.parent).as_posix()) for f in files)
    return names


def load_subset(
    root: str | Path, subset: str, image_size: int = 28, cache_dir: CacheDir = None
) -> LabelledImages:
    """All characters of ``subset`` (``"background"`` or ``"evaluation"``), cached on disk."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    root = Path(root)
    size = as_size(image_size)
    zip_path, folder = root / f"images_{subset}.zip", root / f"images_{subset}"
    if zip_path.is_file():
        fingerprint = {"source": file_fingerprint(zip_path), "size": size}
        build = lambda: _from_zip(zip_path, subset, size)  # noqa: E731
    elif folder.is_dir():
        names = _folder_files(folder)
        paths = [root / n for n in names]
        fingerprint = {"source": str(folder.resolve()), "tree": tree_fingerprint(paths, root)}
        fingerprint["size"] = size

        def build() -> LabelledImages:
            return _build(_group(names, subset, str(folder)), lambda n: root / n, size)
    else:
        raise FileNotFoundError(
            f"Omniglot {subset} set not found: looked for {zip_path} and {folder}/. Put the "
            f"official {EXPECTED} in {root} (set METARL_DATA to the folder holding omniglot/)"
        )
    return cached(f"omniglot-{subset}", fingerprint, build, cache_dir)


def split_classes(scheme: str, split: str) -> dict[str, list[str]]:
    """``{subset: ["Alphabet/characterNN", ...]}`` for ``split`` of ``scheme``."""
    if scheme == "lake":
        table = {"train": "background", "test": "evaluation"}
        if split not in table:
            raise ValueError(
                f"the 'lake' split scheme has only 'train' (background) and 'test' (evaluation), "
                f"got {split!r}; use split_scheme='vinyals' for a validation split"
            )
        return {table[split]: []}  # empty list = every class of the subset
    if scheme != "vinyals":
        raise ValueError(f"split_scheme must be one of {SPLIT_SCHEMES}, got {scheme!r}")
    parts = split.split("+")
    bad = [p for p in parts if p not in ("train", "val", "test")]
    if bad:
        raise ValueError(f"split must be train, val, test or train+val, got {split!r}")
    out: dict[str, list[str]] = defaultdict(list)
    for part in parts:
        path = SPLITS_DIR / f"vinyals_{part}.json"
        with open(path) as f:
            table = json.load(f)
        for subset, alphabets in sorted(table.items()):
            if subset not in SUBSETS:
                raise ValueError(f"{path}: unknown subset {subset!r}; expected one of {SUBSETS}")
            for alphabet, chars in sorted(alphabets.items()):
                out[subset].extend(f"{alphabet}/{c}" for c in chars)
    return dict(out)


def load_omniglot(
    root: str | Path,
    split: str = "train",
    split_scheme: str = "vinyals",
    image_size: int = 28,
    cache_dir: CacheDir = None,
) -> LabelledImages:
    """The Omniglot characters of ``split`` as a :class:`LabelledImages` (uint8, inverted)."""
    parts = []
    for subset, classes in split_classes(split_scheme, split).items():
        data = load_subset(root, subset, image_size, cache_dir)
        if classes:
            missing = sorted(set(classes) - set(data.class_names))
            if missing:
                raise ValueError(
                    f"the {split_scheme} {split!r} split names {len(missing)} characters missing "
                    f"from the {subset} set in {root}, e.g. {missing[:3]}; is the set complete?"
                )
            data = data.subset(classes)
        parts.append(data)
    return parts[0] if len(parts) == 1 else concatenate(parts)
