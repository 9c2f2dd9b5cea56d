"""BatchedSB3VecEnv: SB3's VecEnv conventions over metarl's batched envs (navigation, whose
dynamics and reward are simple enough to recompute here)."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecMonitor

from metarl.rl.config import SamplerConfig
from metarl.rl.sb3_vec_env import BatchedSB3VecEnv

NAV = "metarl/Navigation2D-v0"
RESCALE = SamplerConfig(rescale_actions=True)  # SB3 acts in [-1, 1], the env moves +-0.1


def test_actions_in_sb3_units_rewards_and_same_step_resets_with_the_oracle_task():
    env = BatchedSB3VecEnv(NAV, 4, horizon=3, sampler=RESCALE, oracle=True)
    assert env.action_space.low.tolist() == [-1.0, -1.0]
    assert env.observation_space.shape == (4,)  # position, then the goal
    env.seed(5)
    obs = env.reset()
    goals = obs[:, 2:].copy()
    assert np.all(obs[:, :2] == 0.0) and np.all(np.abs(goals) <= 0.5)
    action = np.tile([0.5, -0.2], (4, 1)).astype(np.float32)  # moves (0.05, -0.02) per step
    for t in range(1, 4):
        obs, reward, done, infos = env.step(action)
        pos = t * np.array([0.05, -0.02])
        expected = -np.linalg.norm(pos - goals, axis=1)
        np.testing.assert_allclose(reward, expected, rtol=1e-5, atol=1e-6)
        if t < 3:
            assert not done.any()
            np.testing.assert_allclose(obs[:, :2], np.tile(pos, (4, 1)), atol=1e-6)
    # the horizon ends every episode: reset in the same step, the old episode in the infos
    assert done.all()
    for i, info in enumerate(infos):
        terminal = info["terminal_observation"]
        np.testing.assert_allclose(terminal[:2], [0.15, -0.06], atol=1e-6)
        np.testing.assert_array_equal(terminal[2:], goals[i])
        assert info["TimeLimit.truncated"] is True
    assert np.all(obs[:, :2] == 0.0)  # every copy starts again at the origin ...
    assert not np.array_equal(obs[:, 2:], goals)  # ... with a new goal
    env.close()


def test_reaching_the_goal_terminates_without_truncation():
    env = BatchedSB3VecEnv(NAV, 2, horizon=100, sampler=RESCALE)
    env.seed(0)
    env.reset()
    goals = np.stack([t["goal"] for t in env.venv.get_tasks()])
    # head straight for each goal at full speed until both have ended once
    pos, ended = np.zeros((2, 2)), {}
    for _ in range(20):
        step = np.clip(goals - pos, -0.1, 0.1)
        obs, _, done, infos = env.step((step / 0.1).astype(np.float32))
        pos = pos + step
        for i in np.flatnonzero(done):
            ended.setdefault(i, infos[i])
            pos[i] = 0.0
        goals = np.stack([t["goal"] for t in env.venv.get_tasks()])
        if len(ended) == 2:
            break
    assert sorted(ended) == [0, 1]
    assert all(info["TimeLimit.truncated"] is False for info in ended.values())
    env.close()


def test_vec_monitor_episode_returns_are_the_reward_sums():
    env = VecMonitor(BatchedSB3VecEnv(NAV, 3, horizon=5, sampler=RESCALE))
    env.seed(1)
    env.reset()
    rng = np.random.default_rng(0)
    sums = np.zeros(3)
    for _ in range(5):
        _, reward, done, infos = env.step(rng.uniform(-1, 1, (3, 2)).astype(np.float32))
        sums += reward
    assert done.all()
    for i, info in enumerate(infos):
        assert info["episode"]["l"] == 5
        assert info["episode"]["r"] == pytest.approx(sums[i], rel=1e-5)
    env.close()


def test_an_env_without_a_batched_version_is_refused():
    with pytest.raises(ValueError, match="vector_entry_point|no metarl batched"):
        BatchedSB3VecEnv("CartPole-v1", 2, horizon=10)


def _rl2_dummy(tasks: list[dict], horizon: int, k: int):
    """The reference: SB3's DummyVecEnv of single navigation envs in RL2Trial wrappers."""
    import gymnasium
    from stable_baselines3.common.vec_env import DummyVecEnv

    from envs import RL2Trial
    from metarl.rl.sb3_policy import sb3_env

    def make(task):
        def thunk():
            env = RL2Trial(sb3_env(gymnasium.make(NAV, max_episode_steps=horizon), RESCALE), k)
            env.set_task(task)
            return env

        return thunk

    return DummyVecEnv([make(t) for t in tasks])


def test_rl2_trials_equal_a_dummy_vec_env_of_rl2_trial_wrappers():
    horizon, k, n = 4, 3, 3
    env = BatchedSB3VecEnv(NAV, n, horizon=horizon, sampler=RESCALE, episodes_per_trial=k)
    tasks = [{"goal": [0.1, 0.2]}, {"goal": [-0.3, 0.05]}, {"goal": [0.02, -0.01]}]
    env.set_tasks(tasks)
    reference = _rl2_dummy(tasks, horizon, k)
    assert env.observation_space == reference.observation_space  # pos, action, reward, flag
    env.seed(0)
    reference.seed(0)
    np.testing.assert_array_equal(env.reset(), reference.reset())
    rng = np.random.default_rng(3)
    ends = 0
    for _ in range(2 * k * horizon + 2):  # two trials and a bit; copy 2 reaches its goal early
        action = rng.uniform(-1.5, 1.5, (n, 2)).astype(np.float32)  # some outside the box
        obs, reward, done, infos = env.step(action)
        ref_obs, ref_reward, ref_done, ref_infos = reference.step(action)
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(reward, ref_reward, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(done, ref_done)
        for info, ref in zip(infos, ref_infos):
            assert info["episode_in_trial"] == ref["episode_in_trial"]
            if "terminal_observation" in ref:
                np.testing.assert_allclose(
                    info["terminal_observation"], ref["terminal_observation"], atol=1e-6
                )
                assert info["TimeLimit.truncated"] is ref["TimeLimit.truncated"] is True
        ends += int(done.sum())
    assert ends >= n  # every copy finished at least one trial
    env.close()


def test_rl2_keeps_the_task_within_a_trial_and_draws_a_new_one_per_trial():
    horizon, k = 3, 2
    env = VecMonitor(
        BatchedSB3VecEnv(NAV, 2, horizon=horizon, sampler=RESCALE, episodes_per_trial=k)
    )
    env.seed(7)
    obs = env.reset()
    inner = env.venv.venv
    first = inner.get_tasks()
    assert np.all(obs[:, 2:] == 0.0)  # no previous action, reward or end at a trial's start
    sums = np.zeros(2)
    action = np.full((2, 2), 0.5, np.float32)
    for t in range(1, k * horizon + 1):
        obs, reward, done, infos = env.step(action)
        sums += reward
        if t == horizon:  # the first inner episode ended: same task, start again, flag set
            assert not done.any()
            assert inner.get_tasks() == first
            np.testing.assert_array_equal(obs[:, :2], 0.0)
            np.testing.assert_allclose(obs[:, 2:4], 0.5)
            np.testing.assert_allclose(obs[:, 4], reward)
            np.testing.assert_array_equal(obs[:, 5], 1.0)
        elif t < k * horizon:
            assert not done.any() and np.all(obs[:, 5] == 0.0)
    assert done.all()  # the K-th inner end closes the trial
    for i, info in enumerate(infos):
        assert info["episode"]["l"] == k * horizon
        assert info["episode"]["r"] == pytest.approx(sums[i], rel=1e-5)
    assert inner.get_tasks() != first  # the next trial has new goals
    np.testing.assert_array_equal(obs[:, 2:], 0.0)
    env.close()


def test_rl2_and_the_oracle_are_one_or_the_other():
    with pytest.raises(ValueError, match="not both"):
        BatchedSB3VecEnv(NAV, 2, horizon=3, oracle=True, episodes_per_trial=2)


def test_rl2_trials_of_a_discrete_family_show_one_hot_previous_actions():
    env = BatchedSB3VecEnv("metarl/Bandit-v0", 3, horizon=2, episodes_per_trial=2)
    arms = env.action_space.n
    inner = env.observation_space.shape[0] - arms - 2  # [obs, one-hot action, reward, flag]
    env.seed(0)
    env.reset()
    for t in range(1, 5):
        actions = np.array([0, t % arms, arms - 1])
        obs, reward, done, infos = env.step(actions)
        seen = np.stack([info["terminal_observation"] for info in infos]) if t == 4 else obs
        np.testing.assert_array_equal(seen[:, inner : inner + arms], np.eye(arms)[actions])
        np.testing.assert_allclose(seen[:, inner + arms], reward)
        if t == 2:  # the first pull-episode ended: flagged, same trial
            assert not done.any() and np.all(obs[:, -1] == 1.0)
    assert done.all()  # two episodes of two pulls: the trial ended
    np.testing.assert_array_equal(obs[:, inner:], 0.0)  # a new trial starts blank
    env.close()
