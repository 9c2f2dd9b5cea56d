"""The few-shot experiment end to end (without the CLI): every learner learns something real."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from metarl.fewshot.experiment import build
from metarl.run.config import validate


def make(**sections) -> object:
    data = {"domain": "fewshot", "seed": 0, "train": {"iterations": 1}}
    for key, value in sections.items():
        data[key] = value
    return validate(data)


@pytest.mark.parametrize(
    "algo",
    [
        {"name": "maml", "inner_lr": 0.01},
        {"name": "fomaml", "inner_lr": 0.01},
        {"name": "metasgd", "inner_lr": 0.01},
        {"name": "anil", "inner_lr": 0.01},
        {"name": "reptile", "inner_lr": 0.02, "inner_steps": 3, "inner_optimizer": "adam"},
    ],
    ids=lambda a: a["name"],
)
def test_sinusoid_learners_reduce_post_adaptation_mse(algo):
    iterations = 300
    cfg = make(
        task={"name": "sinusoid", "shots": 10, "query": 10},
        model={"name": "mlp", "hidden_sizes": [40, 40]},
        algo={**algo, "meta_batch_size": 10, "outer_lr": 3.0e-3, "task_batching": "vmap"},
        train={"iterations": iterations},
        eval={"tasks": 100, "steps": 1, "query": 50},
    )
    exp = build(cfg)
    before = exp.evaluate()
    for it in range(iterations):
        metrics = exp.train_iteration(it)
        assert np.isfinite(metrics["train/loss"])
    after = exp.evaluate()
    assert after.metric == "mse" and after.num_tasks == 100
    # the meta-learned init, adapted with one step, fits unseen sinusoids clearly better than the
    # random init did (MSE of a random init is ~amplitude^2 / 2 ~ 4)
    assert after.mean[-1] < 0.75 * before.mean[-1], (before.mean, after.mean)


def test_evaluation_is_reproducible_and_leaves_training_stream_alone():
    cfg = make(
        task={"name": "sinusoid"}, algo={"task_batching": "loop"}, eval={"tasks": 20, "steps": 2}
    )
    exp = build(cfg)
    state = exp.rng.bit_generator.state
    a, b = exp.evaluate(), exp.evaluate()
    assert a == b
    assert exp.rng.bit_generator.state == state
    assert exp.evaluate(split="val") != a  # another split is another task stream


def test_auto_task_batching_is_resolved_and_reported():
    cfg = make(task={"name": "sinusoid"}, algo={"task_batching": "auto", "meta_batch_size": 4})
    exp = build(cfg)
    exp.train_iteration(0)
    assert exp.task_batching in ("vmap", "loop")
    assert set(exp.summary_extra()["task_batching_timings_s"]) == {"vmap", "loop"}


def _pattern_folder(root, classes=12, per_class=8, size=12, seed=0):
    """Classes that are learnable: each class is a fixed random binary template, its images are
    the template with a few flipped pixels."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        template = rng.random((size, size)) < 0.5
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            noisy = template ^ (rng.random((size, size)) < 0.05)
            Image.fromarray((noisy * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def _folder_task(tmp_path, query: int) -> dict:
    """3-way 1-shot tasks over :func:`_pattern_folder` classes, split by ratio."""
    return {
        "name": "folder",
        "folder": str(_pattern_folder(tmp_path / "images")),
        "ways": 3,
        "shots": 1,
        "query": query,
        "image_size": 12,
        "channels": 1,
        "split": "ratio",
        "split_ratios": [0.5, 0.25, 0.25],
        "cache_dir": str(tmp_path / "cache"),
    }


@pytest.mark.parametrize(
    "algo, iterations",
    [
        ({"name": "maml", "inner_lr": 0.4, "inner_steps": 1}, 40),
        ({"name": "protonets", "task_batching": "auto"}, 40),
        ({"name": "reptile", "inner_lr": 1.0e-2, "inner_steps": 5, "inner_optimizer": "adam"}, 40),
        (
            {
                "name": "reptile",
                "inner_lr": 1.0e-2,
                "inner_steps": 4,
                "inner_state": "carry",
                "train_shots": 4,
                "inner_batch_size": 6,
            },
            40,
        ),
    ],
    ids=lambda a: (
        a["name"] + ("_carry" if a.get("inner_state") == "carry" else "")
        if isinstance(a, dict)
        else str(a)
    ),
)
def test_image_episodes_from_a_folder_learn_above_chance(tmp_path, algo, iterations):
    cfg = make(
        task=_folder_task(tmp_path, query=2),
        model={"name": "conv4", "filters": 8, "pooling": "stride", "normalization": "batch"},
        algo={"meta_batch_size": 4, "outer_lr": 3.0e-3, "task_batching": "vmap", **algo},
        train={"iterations": iterations},
        eval={"tasks": 60, "steps": 3},
    )
    torch.manual_seed(0)
    exp = build(cfg)
    for it in range(iterations):
        exp.train_iteration(it)
    curve = exp.evaluate()
    assert curve.metric == "accuracy"
    # 3-way: chance is 33%; held-out classes (the test split) are recognised from one example
    assert curve.mean[-1] > 55.0, curve.mean
    assert exp.summary_extra()["normalization"] == "batch"


def test_reptile_code_protocol_uses_train_shots_batches_and_carried_state(tmp_path):
    task = _folder_task(tmp_path, query=1)
    algo = {
        "name": "reptile",
        "inner_lr": 1.0e-2,
        "inner_steps": 3,
        "inner_state": "carry",
        "train_shots": 5,
        "inner_batch_size": 4,
        "meta_batch_size": 2,
        "task_batching": "loop",
    }
    model = {"name": "conv4", "filters": 4, "normalization": "batch"}
    cfg = make(
        task=task, algo=algo, model=model, eval={"tasks": 4, "steps": 2, "inner_batch_size": 2}
    )
    exp = build(cfg)
    seen = []
    learner_step = exp.learner.module.meta_step

    def spy(support, eps, mode=None, rows=None):
        seen.append((support[1].shape, rows.shape))
        return learner_step(support, eps, mode=mode, rows=rows)

    exp.learner.module.meta_step = spy
    exp.train_iteration(0)
    # 3 ways x 5 train shots per task, 3 inner steps on batches of 4 of them
    assert seen == [(torch.Size([2, 15]), torch.Size([2, 3, 4]))]
    t, _, v = exp.learner.module.optimizer_state
    assert t == 2 * 3
    # the carried Adam state survives a checkpoint round trip, and evaluation leaves it alone
    again = build(cfg)
    again.load_state_dict(exp.state_dict())
    assert again.learner.module.optimizer_state[0] == t
    assert all(torch.equal(again.learner.module.optimizer_state[2][k], v[k]) for k in v)
    assert again.evaluate() == exp.evaluate()
    assert exp.learner.module.optimizer_state[0] == t


@pytest.mark.parametrize(
    "algo, eval_, match",
    [
        ({"name": "maml", "train_shots": 10}, {}, "train_shots is a Reptile setting"),
        ({"name": "protonets", "inner_state": "carry"}, {}, "inner_state is a Reptile setting"),
        (
            {"name": "reptile", "inner_optimizer": "sgd", "inner_state": "carry"},
            {},
            "needs inner_optimizer adam",
        ),
        ({"name": "maml"}, {"inner_batch_size": 5}, "eval.inner_batch_size is a Reptile setting"),
    ],
)
def test_reptile_only_settings_are_rejected_elsewhere(algo, eval_, match):
    from metarl.run.errors import UserError

    with pytest.raises(UserError, match=match):
        make(task={"name": "sinusoid"}, algo=algo, eval=eval_)


def test_rotations_make_new_classes_on_the_train_split_only(tmp_path):
    """Omniglot protocol: with task.rotations the 6 training classes become 24 (x4 rotations);
    validation and test classes are never rotated."""
    from metarl.fewshot.task_sources import EpisodeSource

    cfg = make(task={**_folder_task(tmp_path, query=1), "rotations": True})
    source = EpisodeSource(cfg)
    train, test = source.sampler("train", 1), source.sampler("test", 1)
    assert (train.num_rotations, train.num_classes) == (4, 4 * source.data("train").num_classes)
    assert (test.num_rotations, test.num_classes) == (1, source.data("test").num_classes)
    assert source.sampler("val", 1).num_rotations == 1
