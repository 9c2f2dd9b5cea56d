"""Fixtures that build small datasets in the exact official layouts under tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fewshot_data import omniglot_members, write_zip
from PIL import Image


@pytest.fixture
def omniglot_zips(tmp_path: Path) -> Path:
    root = tmp_path / "omniglot"
    root.mkdir()
    for subset in ("background", "evaluation"):
        write_zip(root / f"images_{subset}.zip", omniglot_members(subset))
    return root


@pytest.fixture
def omniglot_folders(tmp_path: Path) -> Path:
    root = tmp_path / "omniglot_extracted"
    for subset in ("background", "evaluation"):
        for name, data in omniglot_members(subset).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """``root/<class>/<image>`` with 6 RGB classes of 3 images each (mixed formats)."""
    root = tmp_path / "my_images"
    rng = np.random.default_rng(1)
    for k in range(6):
        folder = root / f"class{k}"
        folder.mkdir(parents=True)
        for i in range(3):
            array = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(array).save(folder / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return root
