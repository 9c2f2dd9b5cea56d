"""``task_range``: another training distribution for any family, through ``gymnasium.make``."""

import pickle

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401


def test_make_draws_tasks_from_the_given_range_single_and_batched():
    env = gymnasium.make("metarl/HalfCheetahVel-v0", task_range={"velocity": [2.5, 3.0]})
    tasks = env.unwrapped.sample_tasks(200, np.random.default_rng(0))
    velocities = np.array([t["velocity"] for t in tasks])
    assert velocities.min() >= 2.5 and velocities.max() <= 3.0
    assert velocities.max() - velocities.min() > 0.4  # spread over the range, not one value
    # without a task set, every reset draws from the given range too
    env.reset(seed=0)
    assert 2.5 <= env.unwrapped.get_task()["velocity"] <= 3.0
    venv = gymnasium.make_vec(
        "metarl/HalfCheetahVel-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        task_range={"velocity": [2.5, 3.0]},
    )
    venv.reset(seed=0)
    assert all(2.5 <= t["velocity"] <= 3.0 for t in venv.unwrapped.get_tasks())
    # the default range is untouched for other instances
    default = gymnasium.make("metarl/HalfCheetahVel-v0").unwrapped
    assert max(t["velocity"] for t in default.sample_tasks(200, np.random.default_rng(0))) <= 2.0


def test_choices_vectors_and_a_fixed_value():
    cheetah = gymnasium.make("metarl/HalfCheetahDir-v0", task_range={"direction": [1]})
    assert {t["direction"] for t in cheetah.unwrapped.sample_tasks(20)} == {1.0}
    nav = gymnasium.make("metarl/Navigation2D-v0", task_range={"goal": [0.3, 0.3]}).unwrapped
    assert nav.sample_tasks(3, np.random.default_rng(0)) == [{"goal": [0.3, 0.3]}] * 3
    hopper = gymnasium.make("metarl/HopperRandParams-v0", task_range={"body_mass": [0.0, 1.0]})
    for task in hopper.unwrapped.sample_tasks(5, np.random.default_rng(0)):
        assert 0.0 <= min(task["body_mass"]) and max(task["body_mass"]) <= 1.0
        assert min(task["dof_damping"]) < 0.0  # the others keep [-3, 3]


def test_set_task_still_takes_any_valid_task_and_errors_name_the_new_range():
    env = gymnasium.make("metarl/AntVel-v0", task_range={"velocity": [0.0, 1.0]}).unwrapped
    env.set_task({"velocity": 2.5})  # outside the training range, inside the valid one
    with pytest.raises(ValueError, match=r"training range U\[0, 1\]"):
        env.set_task({"velocity": 20.0})


def test_pickling_and_the_spec_keep_the_range():
    env = gymnasium.make("metarl/HalfCheetahVel-v0", task_range={"velocity": [2.5, 3.0]})
    copy = pickle.loads(pickle.dumps(env.unwrapped))
    assert all(t["velocity"] >= 2.5 for t in copy.sample_tasks(50, np.random.default_rng(1)))
    again = gymnasium.make(env.spec)
    assert all(t["velocity"] >= 2.5 for t in again.unwrapped.sample_tasks(50))


def test_a_disk_for_a_two_vector_and_back_to_a_square():
    """``{"radius": r}`` draws 2-d goals uniformly by area from the disk (ProMP's AntRandGoal):
    all inside it, half of them within r / sqrt(2), single and batched, kept through pickling;
    a later [low, high] gives the square again."""
    env = gymnasium.make("metarl/Navigation2D-v0", task_range={"goal": {"radius": 0.5}}).unwrapped
    copy = pickle.loads(pickle.dumps(env))
    for e in (env, copy):
        goals = np.array([t["goal"] for t in e.sample_tasks(4000, np.random.default_rng(0))])
        radii = np.linalg.norm(goals, axis=1)
        assert radii.max() <= 0.5 and abs(np.mean(radii < 0.5 / np.sqrt(2)) - 0.5) < 0.03
        assert abs(np.mean((goals[:, 0] > 0) & (goals[:, 1] > 0)) - 0.25) < 0.03  # every angle
    assert "disk(0.5)" in str(pytest.raises(ValueError, env.set_task, {"goal": [60.0, 0.0]}).value)
    venv = gymnasium.make_vec(
        "metarl/AntGoal-v0",
        num_envs=8,
        vectorization_mode="vector_entry_point",
        task_range={"goal": {"radius": 0.1}},
    )
    venv.reset(seed=0)
    assert all(np.hypot(*t["goal"]) <= 0.1 for t in venv.unwrapped.get_tasks())
    env.set_task_range({"goal": [0.4, 0.5]})
    goals = np.array([t["goal"] for t in env.sample_tasks(200, np.random.default_rng(0))])
    assert goals.min() >= 0.4 and goals.max() <= 0.5


@pytest.mark.parametrize(
    ("env_id", "task_range", "message"),
    [
        ("metarl/HalfCheetahVel-v0", {"speed": [0, 1]}, "unknown keys"),
        ("metarl/HalfCheetahVel-v0", {"velocity": [0, 30]}, "outside the valid range"),
        ("metarl/HalfCheetahVel-v0", {"velocity": [2, 1]}, "low <= high"),
        ("metarl/HalfCheetahVel-v0", {"velocity": 2.0}, "must be a list"),
        ("metarl/HalfCheetahVel-v0", {"velocity": [0, float("nan")]}, "finite numbers"),
        ("metarl/HalfCheetahDir-v0", {"direction": []}, "is empty"),
        ("metarl/HalfCheetahVel-v0", [0, 3], "mapping"),
        ("metarl/AntGoal-v0", {"goal": {"radius": -1}}, "number r > 0"),
        ("metarl/AntGoal-v0", {"goal": {"radius": 3, "centre": [0, 0]}}, "number r > 0"),
        ("metarl/AntGoal-v0", {"goal": {"radius": 60}}, "outside the valid range"),
        ("metarl/HalfCheetahVel-v0", {"velocity": {"radius": 1}}, "must be a list"),
        ("metarl/TabularMDP-v0", {}, "draws its tasks its own way"),
    ],
)
def test_bad_ranges_are_refused_with_the_fix(env_id, task_range, message):
    with pytest.raises(ValueError, match=message):
        gymnasium.make(env_id, task_range=task_range)
