import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fewshot_data import REAL_OMNIGLOT, omniglot_members, png_bytes, write_zip

from metarl.fewshot.datasets import cache as cache_module
from metarl.fewshot.datasets import images as images_module
from metarl.fewshot.datasets import load_dataset
from metarl.fewshot.datasets.omniglot import SPLITS_DIR, load_omniglot, split_classes


def test_lake_split_from_zips(omniglot_zips: Path, tmp_path: Path) -> None:
    train = load_omniglot(omniglot_zips, "train", "lake", cache_dir=tmp_path / "c")
    test = load_omniglot(omniglot_zips, "test", "lake", cache_dir=tmp_path / "c")
    assert train.images.shape == (5 * 4, 28, 28, 1) and train.images.dtype == np.uint8
    assert train.class_names == tuple(
        sorted(
            f"{a}/character{c:02d}"
            for a, n in [("Latin", 3), ("Greek", 2)]
            for c in range(1, n + 1)
        )
    )
    assert test.num_classes == 4 and list(test.class_counts()) == [4] * 4
    # inverted: background 0, strokes bright; strokes are the minority of pixels
    assert np.median(train.images) == 0 and train.images.max() == 255
    assert (train.images > 127).mean() < 0.3
    with pytest.raises(ValueError, match="has only 'train'.*'test'"):
        load_omniglot(omniglot_zips, "val", "lake", cache_dir=False)


def test_folders_equal_zips(omniglot_zips: Path, omniglot_folders: Path, tmp_path: Path) -> None:
    a = load_omniglot(omniglot_zips, "train", "lake", cache_dir=False)
    b = load_omniglot(omniglot_folders, "train", "lake", cache_dir=tmp_path)
    assert a.class_names == b.class_names
    np.testing.assert_array_equal(a.images, b.images)


def test_cache_hit_and_key(omniglot_zips: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    first = load_omniglot(omniglot_zips, "test", "lake", cache_dir=cache)
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))

    def boom(*args, **kwargs):
        raise RuntimeError("decoded again")

    monkeypatch.setattr("metarl.fewshot.datasets.omniglot.decode_image", boom)
    again = load_omniglot(omniglot_zips, "test", "lake", cache_dir=cache)
    np.testing.assert_array_equal(first.images, again.images)
    with pytest.raises(RuntimeError, match="decoded again"):  # new setting -> new key
        load_omniglot(omniglot_zips, "test", "lake", image_size=20, cache_dir=cache)
    monkeypatch.undo()
    files[0].write_bytes(b"damaged")  # a damaged cache file is rebuilt with a warning
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = load_omniglot(omniglot_zips, "test", "lake", cache_dir=cache)
    np.testing.assert_array_equal(first.images, rebuilt.images)


def test_default_cache_dir_from_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METARL_CACHE", str(tmp_path / "envcache"))
    assert cache_module.default_cache_dir() == tmp_path / "envcache"
    monkeypatch.delenv("METARL_CACHE")
    assert cache_module.default_cache_dir() == Path.home() / ".cache" / "metarl"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_zip(omniglot_zips: Path, damage: str) -> None:
    path = omniglot_zips / "images_background.zip"
    data = path.read_bytes()
    path.write_bytes(b"not a zip at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ValueError, match="images_background.zip is not a readable zip"):
        load_omniglot(omniglot_zips, "train", "lake", cache_dir=False)


def test_corrupt_member(omniglot_zips: Path) -> None:
    path = omniglot_zips / "images_evaluation.zip"
    members = omniglot_members("evaluation")
    name = next(iter(members))
    blob = bytearray(path.read_bytes())
    start = blob.find(members[name][20:40])  # flip bytes inside the first member's data
    blob[start : start + 8] = bytes(8)
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt|not a readable image"):
        load_omniglot(omniglot_zips, "test", "lake", cache_dir=False)


def test_non_image_named_and_dotfiles_skipped(tmp_path: Path) -> None:
    members = omniglot_members("evaluation")
    members["images_evaluation/Runic/character01/.DS_Store"] = b"junk"
    members["__MACOSX/images_evaluation/._x.png"] = b"junk"
    write_zip(tmp_path / "images_evaluation.zip", members)
    data = load_omniglot(tmp_path, "test", "lake", cache_dir=False)
    assert len(data) == 16
    members["images_evaluation/Runic/character01/notes.txt"] = b"hello"
    write_zip(tmp_path / "images_evaluation.zip", members)
    with pytest.raises(ValueError, match="character01/notes.txt is not a readable image"):
        load_omniglot(tmp_path, "test", "lake", cache_dir=False)


def test_empty_character_folder(omniglot_folders: Path) -> None:
    (omniglot_folders / "images_background" / "Latin" / "character09").mkdir()
    with pytest.raises(ValueError, match="character09 is empty"):
        load_omniglot(omniglot_folders, "train", "lake", cache_dir=False)


def test_vinyals_split_missing_classes(omniglot_zips: Path) -> None:
    with pytest.raises(ValueError, match="vinyals 'val' split names 172 characters missing"):
        load_omniglot(omniglot_zips, "val", "vinyals", cache_dir=False)


def test_vinyals_split_files() -> None:
    sizes = {}
    seen: set[str] = set()
    for split in ("train", "val", "test"):
        classes = [c for cs in split_classes("vinyals", split).values() for c in cs]
        sizes[split] = len(classes)
        assert not seen & set(classes)
        seen |= set(classes)
    assert sizes == {"train": 1028, "val": 172, "test": 423}
    assert len([c for cs in split_classes("vinyals", "train+val").values() for c in cs]) == 1200
    assert json.loads((SPLITS_DIR / "vinyals_val.json").read_text())


def test_missing_dataset_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("METARL_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="images_background.zip and images_evaluation.zip"):
        load_dataset("omniglot", split="train")
    monkeypatch.delenv("METARL_DATA")
    with pytest.raises(FileNotFoundError, match="set METARL_DATA"):
        load_dataset("omniglot", split="train")


def test_load_dataset_finds_omniglot_under_data_root(omniglot_zips: Path, monkeypatch) -> None:
    monkeypatch.setenv("METARL_DATA", str(omniglot_zips.parent))
    data = load_dataset("omniglot", split="test", split_scheme="lake", cache_dir=False)
    assert data.num_classes == 4


@pytest.mark.skipif(not REAL_OMNIGLOT.is_dir(), reason="real Omniglot not present")
def test_real_omniglot_vinyals_classes_exist() -> None:
    """Every class of the packaged Vinyals split exists in the real zips with 20 drawings."""
    names = []
    for subset in ("background", "evaluation"):
        with zipfile.ZipFile(REAL_OMNIGLOT / f"images_{subset}.zip") as archive:
            names += [n for n in archive.namelist() if n.endswith(".png")]
    counts: dict[str, int] = {}
    for n in names:
        key = "/".join(n.split("/")[1:3])
        counts[key] = counts.get(key, 0) + 1
    for split in ("train", "val", "test"):
        for classes in split_classes("vinyals", split).values():
            assert all(counts.get(c) == 20 for c in classes)


def test_decode_keeps_mode_and_size() -> None:
    array = np.zeros((7, 9), np.uint8)
    out = images_module.decode_image(png_bytes(array), "x.png", "RGB", (5, 4))
    assert out.shape == (5, 4, 3)
