import numpy as np
import pytest
import torch

from metarl.fewshot.episodes import EpisodeSampler, FewShotBatch
from metarl.fewshot.image_set import LabelledImages


def make_data(num_classes: int = 6, per_class: int = 5, size: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    counts = [per_class + (c % 2) for c in range(num_classes)]  # uneven classes
    images = rng.integers(0, 256, (sum(counts), size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(num_classes), counts)
    order = rng.permutation(len(labels))  # unsorted input on purpose
    return LabelledImages.from_arrays(images[order], labels[order])


def identify(data: LabelledImages, image: torch.Tensor, rotations: bool) -> tuple[int, int]:
    """(row, quarter turns) of a sampled float image in ``data``."""
    target = np.rint(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    for rot in range(4 if rotations else 1):
        rotated = np.rot90(data.images, rot, axes=(1, 2))
        hits = np.flatnonzero((rotated == target).all(axis=(1, 2, 3)))
        if hits.size:
            return int(hits[0]), rot
    raise AssertionError("sampled image not found in the data")


@pytest.mark.parametrize("rotations", [False, True])
def test_task_invariants(rotations: bool) -> None:
    data = make_data()
    sampler = EpisodeSampler(data, num_ways=3, num_shots=2, num_queries=2, rotations=rotations)
    batch = sampler.sample_tasks(6, np.random.default_rng(0))
    assert isinstance(batch, FewShotBatch)
    assert batch.support_x.shape == (6, 6, 1, 6, 6) and batch.support_x.dtype == torch.float32
    assert batch.query_x.shape == (6, 6, 1, 6, 6)
    assert batch.support_y.dtype == torch.int64 and batch.query_y.shape == (6, 6)
    seen_rotations = set()
    for t in range(6):
        assert sorted(batch.support_y[t].tolist()) == [0, 0, 1, 1, 2, 2]
        assert sorted(batch.query_y[t].tolist()) == [0, 0, 1, 1, 2, 2]
        label_to_class: dict[int, tuple[int, int]] = {}
        used = []
        for x, y in list(zip(batch.support_x[t], batch.support_y[t])) + list(
            zip(batch.query_x[t], batch.query_y[t])
        ):
            row, rot = identify(data, x, rotations)
            cls = (int(data.labels[row]), rot)
            assert label_to_class.setdefault(int(y), cls) == cls  # one class per label
            used.append((row, rot))
            seen_rotations.add(rot)
        assert len(set(label_to_class.values())) == 3  # N distinct (rotated) classes
        assert len(set(used)) == len(used)  # no image twice, so no support/query overlap
    assert (len(seen_rotations) > 1) == rotations


def test_rotated_copies_are_distinct_classes() -> None:
    data = make_data(num_classes=1, per_class=4)
    sampler = EpisodeSampler(data, num_ways=4, num_shots=1, num_queries=1, rotations=True)
    batch = sampler.sample_tasks(3, np.random.default_rng(1))
    for t in range(3):
        rots = {identify(data, x, True)[1] for x in batch.support_x[t]}
        assert rots == {0, 1, 2, 3}
    assert sampler.class_name(3) == "0@rot270"


def test_same_seed_same_tasks() -> None:
    sampler = EpisodeSampler(make_data(), 3, 1, 2, rotations=True)
    a = sampler.sample_tasks(4, np.random.default_rng(7))
    b = sampler.sample_tasks(4, np.random.default_rng(7))
    c = sampler.sample_tasks(4, np.random.default_rng(8))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    assert not torch.equal(a.support_x, c.support_x)


def test_label_assignment_is_shuffled() -> None:
    data = make_data(num_classes=3, per_class=3)
    sampler = EpisodeSampler(data, 3, 1, 0)
    batch = sampler.sample_tasks(40, np.random.default_rng(0))
    first = {int(data.labels[identify(data, batch.support_x[t][0], False)[0]]) for t in range(40)}
    assert batch.query_x.shape == (40, 0, 1, 6, 6)
    assert len(first) == 3


def test_errors_name_the_numbers() -> None:
    data = make_data(num_classes=4, per_class=5)
    with pytest.raises(ValueError, match="num_ways=5 is larger than the 4 classes"):
        EpisodeSampler(data, 5, 1, 1)
    EpisodeSampler(data, 5, 1, 1, rotations=True)  # 16 classes with rotations
    with pytest.raises(ValueError, match="= 7 images per class.*'0' \\(5 images\\)"):
        EpisodeSampler(data, 2, 2, 5)
    wide = LabelledImages.from_arrays(np.zeros((4, 3, 5), np.uint8), np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="square images, got 3x5"):
        EpisodeSampler(wide, 2, 1, 1, rotations=True)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        EpisodeSampler(data, 2, 1, 1).sample_tasks(2, 0)  # type: ignore[arg-type]


def test_labelled_images_validation() -> None:
    with pytest.raises(ValueError, match="uint8"):
        LabelledImages.from_arrays(np.zeros((2, 3, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="without images"):
        LabelledImages.from_arrays(np.zeros((2, 3, 3), np.uint8), np.array([0, 2]))
    data = make_data()
    sub = data.subset(["3", "1"])
    assert sub.class_names == ("3", "1") and sub.labels.max() == 1
    with pytest.raises(ValueError, match="not in this dataset"):
        data.subset(["nope"])


def test_inner_batches_walk_through_shuffled_epochs():
    from metarl.fewshot.episodes import inner_batches

    rows = inner_batches(3, 10, 4, 5, np.random.default_rng(0))  # 20 rows = 2 epochs of 10
    assert rows.shape == (3, 5, 4) and rows.dtype == torch.int64
    for task in rows.reshape(3, -1):
        assert sorted(task[:10].tolist()) == list(range(10))  # epoch 1: every example once
        assert sorted(task[10:].tolist()) == list(range(10))  # epoch 2, batch 3 spans both
    assert not torch.equal(rows[0], rows[1])  # tasks are shuffled independently
    assert torch.equal(rows, inner_batches(3, 10, 4, 5, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        inner_batches(3, 10, 0, 5, np.random.default_rng(0))
