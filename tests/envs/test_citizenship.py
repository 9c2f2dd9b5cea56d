"""Every registered metarl id: Gymnasium + SB3 checkers, PPO smoke, pickling, seeding."""

import pickle
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import envs

IDS = envs.registered_ids()


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_checker(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(gymnasium.make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_checker(env_id):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(gymnasium.make(env_id), warn=False)


@pytest.mark.parametrize("env_id", IDS)
def test_ppo_smoke(env_id):
    """SB3's PPO trains on the env as it is registered: it collects the steps asked for and its
    update moves the policy."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gymnasium.make(env_id)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps == 256
    moved = [not torch.equal(a, b) for a, b in zip(before, model.policy.parameters())]
    assert any(moved)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)  # predict clips to the box


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip(env_id):
    """A pickled env (what process and Ray workers receive) keeps its task: after the same
    reset and actions it gives the same observations and rewards as the original."""
    env = gymnasium.make(env_id).unwrapped
    task = env.sample_tasks(1, np.random.default_rng(0))[0]
    env.set_task(task)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.get_task() == env.get_task()
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(5)]
    runs = []
    for e in (env, clone):
        obs, _ = e.reset(seed=0)
        steps = [obs] + [e.step(a)[:2] for a in actions]
        runs.append(steps)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for (o1, r1), (o2, r2) in zip(runs[0][1:], runs[1][1:]):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectory(env_id):
    def roll():
        env = gymnasium.make(env_id)
        env.action_space.seed(3)
        obs, info = env.reset(seed=5)
        out, rews = [np.asarray(obs, float)], []
        for _ in range(10):
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            out.append(np.asarray(obs, float))
            rews.append(r)
        return np.stack(out), rews, info["task"]

    (a, ra, ta), (b, rb, tb) = roll(), roll()
    np.testing.assert_array_equal(a, b)
    assert ra == rb and ta == tb


def test_describe_families():
    rows = envs.describe_families()
    assert [r["id"] for r in rows] == IDS
    for r in rows:
        assert r["kind"] in ("goal", "dynamics")
        assert set(r) >= {"id", "kind", "task", "horizon", "obs", "action", "fast_path"}


def test_render_rgb_array_headless():
    """Skipped only where the chosen headless GL backend's library is absent (.ci/run installs
    EGL); where it exists, rendering must work and draw something."""
    import ctypes.util
    import os

    backend = os.environ.get("MUJOCO_GL")
    if backend not in ("egl", "osmesa"):
        pytest.skip("needs MUJOCO_GL=egl or osmesa")
    library = {"egl": "EGL", "osmesa": "OSMesa"}[backend]
    if ctypes.util.find_library(library) is None:
        pytest.skip(f"MUJOCO_GL={backend} but lib{library} is not installed")
    env = gymnasium.make("metarl/HalfCheetahVel-v0", render_mode="rgb_array", width=64, height=64)
    env.reset(seed=0)
    try:
        frame = env.render()
    finally:
        env.close()
    assert frame.shape == (64, 64, 3)
    assert frame.std() > 5  # a drawn scene (floor, cheetah), not a blank buffer
