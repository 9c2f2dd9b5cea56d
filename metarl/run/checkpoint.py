"""Checkpoints: written atomically (temp file, fsync, rename), read with ``weights_only=True``.

A checkpoint holds tensors and plain Python data only, so loading it never runs pickled code.
Its tensors are saved on the CPU and loaded with ``map_location`` onto the run's device, so a
checkpoint written on a GPU evaluates on a CPU-only machine and back.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .device import to_device
from .errors import UserError

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (its tensors moved to the CPU) to ``path`` so that a crash at any moment
    leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialise in memory: torch.save on a full disk raises a RuntimeError
    torch.save(to_device(state, "cpu"), buffer)  # ("unexpected pos"), a write raises ENOSPC
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # torn writes of a killed process
        stale.unlink(missing_ok=True)
    return path


def keep_checkpoint(path: str | Path, kept: str | Path) -> Path:
    """Keep the checkpoint at ``path`` for good as ``kept``: a hard link where the file system
    has them (no space used until ``path`` is next replaced), else a copy; atomic either way."""
    path, kept = Path(path), Path(kept)
    tmp = kept.with_name(f".{kept.name}.keep.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, kept)
    return kept


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with its tensors on ``map_location``
    (the run's device; whatever device wrote them); a bad file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"no checkpoint at {path}: the run has not reached its first checkpoint "
            "(train.checkpoint_every) or the directory is not a metarl run"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():  # a pickled global: code, refused
            raise UserError(
                f"checkpoint {path} was refused: it holds pickled Python objects, i.e. code, "
                "which metarl never loads (checkpoints hold tensors and plain data only); "
                "nothing in it was run and nothing was changed. Use a checkpoint metarl wrote"
            ) from None
        raise _unreadable(path, e) from None
    except Exception as e:  # truncated, corrupt, or not a torch file
        raise _unreadable(path, e) from None
    if not isinstance(state, dict) or "iteration" not in state or "experiment" not in state:
        raise UserError(f"checkpoint {path} is not a metarl checkpoint (no iteration/experiment)")
    return state


def _unreadable(path: Path, e: Exception) -> UserError:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return UserError(
        f"checkpoint {path} is unreadable ({reason}); it may be truncated or corrupt. "
        "Restore it from a backup or start a new run; nothing was changed"
    )
