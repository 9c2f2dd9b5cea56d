"""On-disk cache of decoded image sets: one ``.npz`` per source and preprocessing setting.

The key hashes a *fingerprint* (source paths with their sizes and modification times, plus the
preprocessing settings), so editing a source or a setting gives a new file. Writes are atomic:
a temp file in the same folder, then ``os.replace``. A cache file that fails to load is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..image_set import LabelledImages

CACHE_VERSION = 1
CacheDir = str | os.PathLike | None | bool


def default_cache_dir() -> Path:
    """``$METARL_CACHE`` if set, else ``~/.cache/metarl``."""
    env = os.environ.get("METARL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metarl"


def resolve_cache_dir(cache_dir: CacheDir) -> Path | None:
    """``None``/``True`` -> the default folder; ``False`` -> no caching; else that folder."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def tree_fingerprint(paths: Iterable[Path], root: Path) -> str:
    """Hash of the relative paths, sizes and modification times of ``paths`` under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(cache_dir: Path, name: str, fingerprint: dict[str, Any]) -> Path:
    blob = json.dumps({"version": CACHE_VERSION, **fingerprint}, sort_keys=True, default=str)
    key = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return cache_dir / f"{name}-{key}.npz"


def save_npz(path: Path, data: LabelledImages) -> None:
    """Write ``data`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                images=data.images,
                labels=data.labels,
                class_names=np.array(data.class_names, dtype=str),
            )
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path: Path) -> LabelledImages:
    with np.load(path, allow_pickle=False) as f:
        return LabelledImages(
            f["images"], f["labels"].astype(np.int64), tuple(str(c) for c in f["class_names"])
        )


def cached(
    name: str,
    fingerprint: dict[str, Any],
    build: Callable[[], LabelledImages],
    cache_dir: CacheDir = None,
) -> LabelledImages:
    """Load ``name`` for ``fingerprint`` from the cache, or ``build()`` it and store it."""
    folder = resolve_cache_dir(cache_dir)
    if folder is None:
        return build()
    path = cache_path(folder, name, fingerprint)
    if path.exists():
        try:
            return load_npz(path)
        except Exception as err:  # a damaged cache file is rebuilt, never trusted
            warnings.warn(f"cache file {path} is unreadable ({err}); rebuilding it", stacklevel=2)
    data = build()
    try:
        save_npz(path, data)
    except OSError as err:
        warnings.warn(
            f"could not write the cache file {path} ({err}); set cache_dir or $METARL_CACHE to "
            "a writable folder to load faster next time",
            stacklevel=2,
        )
    return data
