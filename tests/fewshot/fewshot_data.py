"""Helpers that build small datasets in the exact official layouts (used by the tests)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REAL_OMNIGLOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "omniglot"


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stroke_image(rng: np.random.Generator, size: int = 35) -> np.ndarray:
    """Black strokes (0) on white (255), like an Omniglot drawing."""
    image = np.full((size, size), 255, dtype=np.uint8)
    r, c = rng.integers(0, size - 10, 2)
    image[r : r + 10, c : c + 3] = 0
    return image


ALPHABETS = {
    "background": {"Latin": 3, "Greek": 2},
    "evaluation": {"Runic": 2, "Braille": 2},
}


def omniglot_members(subset: str, seed: int = 0, per_class: int = 4) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    members = {}
    for alphabet, chars in ALPHABETS[subset].items():
        for c in range(1, chars + 1):
            for d in range(1, per_class + 1):
                name = f"images_{subset}/{alphabet}/character{c:02d}/{c:04d}_{d:02d}.png"
                members[name] = png_bytes(stroke_image(rng), mode="1")
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
