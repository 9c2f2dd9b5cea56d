import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metarl.fewshot.datasets import load_dataset
from metarl.fewshot.datasets.folder import split_class_names
from metarl.fewshot.datasets.miniimagenet import load_miniimagenet


def mini_pickle(root: Path, split: str, per_class: int = 3, classes: int = 4) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (per_class * classes, 84, 84, 3), dtype=np.uint8)
    class_dict = {f"n0{k}": list(range(k * per_class, (k + 1) * per_class)) for k in range(classes)}
    blob = {"image_data": images, "class_dict": class_dict}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
        pickle.dump(blob, f)
    return blob


def mini_csv(root: Path, split: str) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for k in range(3):
        for i in range(2):
            name = f"n0{k}0000{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(
                root / "images" / name
            )
            rows.append((name, f"n0{k}"))
    with open(root / f"{split}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)


def test_miniimagenet_pickle(tmp_path: Path) -> None:
    blob = mini_pickle(tmp_path / "miniimagenet", "val")
    data = load_dataset("miniimagenet", tmp_path, "val", cache_dir=False)
    assert data.images.shape == (12, 84, 84, 3) and data.class_names == ("n00", "n01", "n02", "n03")
    np.testing.assert_array_equal(data.images[data.labels == 2], blob["image_data"][6:9])
    small = load_miniimagenet(tmp_path / "miniimagenet", "val", image_size=42)
    assert small.images.shape == (12, 42, 42, 3)


def test_miniimagenet_pickle_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    tmp_path.joinpath("mini-imagenet-cache-test.pkl").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_miniimagenet(tmp_path, "test")
    tmp_path.joinpath("mini-imagenet-cache-test.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="'image_data' and 'class_dict'"):
        load_miniimagenet(tmp_path, "test")


def test_miniimagenet_csv(tmp_path: Path) -> None:
    mini_csv(tmp_path, "train")
    data = load_miniimagenet(tmp_path, "train", cache_dir=tmp_path / "cache")
    assert data.images.shape == (6, 84, 84, 3) and data.num_classes == 3
    again = load_miniimagenet(tmp_path, "train", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(data.images, again.images)
    (tmp_path / "images" / "n0100001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="lists n0100001.jpg"):
        load_miniimagenet(tmp_path, "train", cache_dir=False)
    (tmp_path / "train.csv").write_text("file,class\na.jpg,x\n")
    with pytest.raises(ValueError, match="first line must be 'filename,label'"):
        load_miniimagenet(tmp_path, "train", cache_dir=False)
    with pytest.raises(FileNotFoundError, match=r"mini-imagenet-cache-test.pkl.*test.csv"):
        load_miniimagenet(tmp_path, "test")


def test_folder_splits(image_folder: Path, tmp_path: Path) -> None:
    kw = {"image_size": 8, "ratios": (0.5, 0.25, 0.25), "seed": 3, "cache_dir": tmp_path / "c"}
    parts = {s: load_dataset("folder", image_folder, s, **kw) for s in ("train", "val", "test")}
    names = [set(p.class_names) for p in parts.values()]
    assert sum(len(n) for n in names) == 6 and len(set.union(*names)) == 6
    assert parts["train"].images.shape == (9, 8, 8, 3)
    again = load_dataset("folder", image_folder, "train", **kw)
    assert again.class_names == parts["train"].class_names
    assert split_class_names([f"c{i}" for i in range(10)], (0.6, 0.2, 0.2), 0) != split_class_names(
        [f"c{i}" for i in range(10)], (0.6, 0.2, 0.2), 1
    )
    gray = load_dataset("folder", image_folder, "all", image_size=(6, 5), mode="L", cache_dir=False)
    assert gray.images.shape == (18, 6, 5, 1)
    lists = {"train": ["class0", "class4"]}
    chosen = load_dataset("folder", image_folder, "train", class_lists=lists, cache_dir=False)
    assert chosen.class_names == ("class0", "class4")
    with pytest.raises(ValueError, match="names 1 classes with no folder.*'class9'"):
        load_dataset(
            "folder", image_folder, "train", class_lists={"train": ["class9"]}, cache_dir=False
        )


def test_folder_bad_input(image_folder: Path) -> None:
    (image_folder / "class0" / ".DS_Store").write_bytes(b"junk")  # hidden: skipped
    assert len(load_dataset("folder", image_folder, "all", image_size=8, cache_dir=False)) == 18
    (image_folder / "class1" / "readme.txt").write_text("not an image")
    with pytest.raises(ValueError, match="class1/readme.txt is not a readable image"):
        load_dataset("folder", image_folder, "all", image_size=8, cache_dir=False)
    (image_folder / "class1" / "readme.txt").unlink()
    (image_folder / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class has no images"):
        load_dataset("folder", image_folder, "all", image_size=8, cache_dir=False)
