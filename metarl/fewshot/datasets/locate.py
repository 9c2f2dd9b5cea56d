"""Where datasets live: ``$METARL_DATA`` (or a given root) holding ``omniglot/`` and
``miniimagenet/``. Nothing is downloaded: a missing dataset is an error that says where it
looked and which files to put there."""

from __future__ import annotations

import os
from pathlib import Path

from .miniimagenet import expected_files
from .omniglot import EXPECTED as OMNIGLOT_FILES

KNOWN = ("omniglot", "miniimagenet")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$METARL_DATA``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("METARL_DATA")
    if not env:
        raise FileNotFoundError(
            "no data root: pass root=... (config key data.root) or set METARL_DATA to a folder "
            "holding omniglot/ (images_background.zip, images_evaluation.zip) and/or "
            "miniimagenet/ (mini-imagenet-cache-{train,val,test}.pkl or {train,val,test}.csv + "
            "images/)"
        )
    return Path(env).expanduser()


def locate(name: str, root: str | os.PathLike | None = None, split: str = "train") -> Path:
    """The folder of dataset ``name``: ``root/name`` if it exists, or ``root`` itself when it
    already is that folder. Raises naming the paths tried and the files expected."""
    if name not in KNOWN:
        raise ValueError(f"unknown dataset {name!r}; known: {KNOWN} (or 'folder' with a path)")
    base = data_root(root)
    for candidate in (base / name, base):
        if name == "omniglot" and any(
            (candidate / f"images_{s}{ext}").exists()
            for s in ("background", "evaluation")
            for ext in (".zip", "")
        ):
            return candidate
        if name == "miniimagenet" and (
            any(candidate.glob("mini-imagenet-cache-*.pkl"))
            or (candidate / f"{split}.csv").exists()
        ):
            return candidate
    wanted = OMNIGLOT_FILES if name == "omniglot" else expected_files(base / name, split)
    raise FileNotFoundError(
        f"{name} not found: looked in {base / name} and {base}. Expected {wanted}. Put the "
        f"files in {base / name} or set METARL_DATA / the data root to the folder holding {name}/"
    )
