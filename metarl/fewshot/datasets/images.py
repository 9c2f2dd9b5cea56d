"""Decoding one image file: PIL open, colour mode, resize; errors name the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MODES = ("L", "RGB")


def is_hidden(name: str) -> bool:
    """Hidden entries (``.DS_Store``, ``._foo.png``, ``__MACOSX``) are skipped, not decoded.

    Any other file among the images must decode, or loading stops with its name: a stray
    ``notes.txt`` is an error rather than a silently dropped (or silently wrong) example.
    """
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(name).parts)


def as_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair."""
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    h, w = (int(v) for v in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return h, w


def decode_image(
    source: bytes | Path, name: str, mode: str, size: tuple[int, int] | None
) -> np.ndarray:
    """Decode ``source`` (bytes or a path) as ``mode`` (``"L"`` or ``"RGB"``), resized to
    ``size = (H, W)`` with LANCZOS; returns uint8 ``[H, W, C]``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            array = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ValueError(
            f"{name} is not a readable image ({type(err).__name__}: {err}); remove or replace "
            "it (hidden dotfiles are skipped, other files must be images)"
        ) from err
    return array[..., None] if array.ndim == 2 else array
