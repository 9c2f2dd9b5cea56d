"""envs.wrappers: Gymnasium/SB3 checkers, the oracle's task tail, RL² trials, SB3 smoke."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.error import ResetNeeded

import envs
from envs import RL2Trial, TaskInObservation
from envs.base import TaskEnvMixin, TaskParam

NAV, CHEETAH, BANDIT, TABULAR = (
    "metarl/Navigation2D-v0",
    "metarl/HalfCheetahVel-v0",
    "metarl/Bandit-v0",
    "metarl/TabularMDP-v0",
)
WRAPPERS = {
    "oracle": TaskInObservation,
    "rl2": lambda env: RL2Trial(env, episodes_per_trial=2),
}
FAR_GOAL = {"goal": [0.4, -0.3]}  # never reached in a few steps of at most 0.1 per axis


def test_ids_exist():
    assert {NAV, CHEETAH, BANDIT, TABULAR} <= set(envs.registered_ids())


# ---------------------------------------------------------------------------- checkers
@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("env_id", [NAV, CHEETAH, BANDIT])
def test_gymnasium_checker(env_id, wrapper):
    from gymnasium.utils.env_checker import check_env

    env = WRAPPERS[wrapper](gymnasium.make(env_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)  # also remakes the env from env.spec


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("env_id", [NAV, CHEETAH, BANDIT])
def test_sb3_checker(env_id, wrapper):
    from stable_baselines3.common.env_checker import check_env

    env = WRAPPERS[wrapper](gymnasium.make(env_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, warn=True)


def test_spec_remakes_the_wrappers():
    env = RL2Trial(TaskInObservation(gymnasium.make(NAV, max_episode_steps=5)), 3)
    remade = env.spec.make()
    assert isinstance(remade, RL2Trial) and remade.episodes_per_trial == 3
    assert isinstance(remade.env, TaskInObservation)
    assert remade.observation_space == env.observation_space
    assert remade.trial_horizon == 15


# ---------------------------------------------------------------------------- oracle
def test_oracle_tail_is_the_task_set_with_set_task():
    env = TaskInObservation(gymnasium.make(NAV))
    env.set_task(FAR_GOAL)
    assert env.get_task() == FAR_GOAL == env.unwrapped.get_task()
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (4,)
    np.testing.assert_array_equal(obs, np.float32([0, 0, 0.4, -0.3]))
    obs, *_ = env.step(np.float32([0.1, 0.05]))
    np.testing.assert_array_equal(obs, np.float32([0.1, 0.05, 0.4, -0.3]))
    obs, _ = env.reset()  # a set task persists
    np.testing.assert_array_equal(obs[2:], np.float32([0.4, -0.3]))
    env.set_task({"goal": [-1.0, 2.0]})  # shows at once, mid-episode
    obs, *_ = env.step(np.zeros(2, np.float32))
    np.testing.assert_array_equal(obs[2:], np.float32([-1.0, 2.0]))


def test_oracle_tail_is_the_task_of_reset_options():
    env = TaskInObservation(gymnasium.make(NAV))
    obs, info = env.reset(seed=1, options={"task": {"goal": [0.25, 0.125]}})
    np.testing.assert_array_equal(obs[2:], np.float32([0.25, 0.125]))
    assert info["task"] == {"goal": [0.25, 0.125]}


def test_oracle_tail_is_the_task_drawn_by_the_env():
    env = TaskInObservation(gymnasium.make(NAV))
    tails = []
    for seed in (0, None, None):
        obs, info = env.reset(seed=seed)
        goal = np.float32(info["task"]["goal"])
        np.testing.assert_array_equal(obs[2:], goal)
        np.testing.assert_array_equal(obs[2:], np.float32(env.unwrapped.get_task()["goal"]))
        for _ in range(3):  # constant over the episode
            obs, *_ = env.step(env.action_space.sample())
            np.testing.assert_array_equal(obs[2:], goal)
        tails.append(goal)
    assert not np.array_equal(tails[0], tails[1]) and not np.array_equal(tails[1], tails[2])
    assert np.all(np.abs(np.concatenate(tails)) <= 0.5)  # the training range


def test_oracle_flattens_vector_params_in_order_row_major():
    env = TaskInObservation(gymnasium.make(TABULAR, num_states=2, num_actions=3))
    obs, info = env.reset(seed=0)
    task = info["task"]
    expected = np.concatenate(
        [np.ravel(task["transitions"]), np.ravel(task["rewards"])]  # [2][3][2] then [2][3]
    ).astype(np.float32)
    assert obs.shape == (2 + 12 + 6,)
    np.testing.assert_array_equal(obs[:2], np.float32([1, 0]))  # one-hot start state
    np.testing.assert_array_equal(obs[2:], expected)
    space = env.observation_space
    np.testing.assert_array_equal(space.low[2:], np.float32([0] * 12 + [-100] * 6))
    np.testing.assert_array_equal(space.high[2:], np.float32([1] * 12 + [100] * 6))


def test_oracle_head_is_the_inner_observation():
    """MuJoCo (float64 observations): the head is the plain env's observation as float32."""
    env = TaskInObservation(gymnasium.make(CHEETAH))
    plain = gymnasium.make(CHEETAH)
    assert env.observation_space.shape == (18,) and env.observation_space.dtype == np.float32
    assert env.observation_space.low[-1] == -10 and env.observation_space.high[-1] == 10
    obs, _ = env.reset(seed=3)
    ref, info = plain.reset(seed=3)
    np.testing.assert_array_equal(obs[:-1], ref.astype(np.float32))
    assert obs[-1] == np.float32(info["task"]["velocity"])
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.uniform(-1, 1, 6).astype(np.float32)
        obs, reward, *_ = env.step(a)
        ref, ref_reward, *_ = plain.step(a)
        np.testing.assert_array_equal(obs[:-1], ref.astype(np.float32))
        assert reward == ref_reward


def test_oracle_forwards_sample_tasks():
    env = TaskInObservation(gymnasium.make(NAV))
    a = env.sample_tasks(3, np.random.default_rng(5))
    b = gymnasium.make(NAV).unwrapped.sample_tasks(3, np.random.default_rng(5))
    assert a == b and len(a) == 3


def test_oracle_step_before_reset_raises():
    env = TaskInObservation(gymnasium.make(NAV).unwrapped)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(2, np.float32))


# ---------------------------------------------------------------------------- errors
class _TinyTaskEnv(TaskEnvMixin, gymnasium.Env):
    """A task env with any spaces, to test the wrappers' checks."""

    task_params = (TaskParam("p", 0.0, 1.0),)

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space):
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        self._prepare_reset(seed, options)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_non_box_observation_raises(wrapper):
    env = _TinyTaskEnv(spaces.Discrete(3), spaces.Discrete(2))
    with pytest.raises(ValueError, match="Box observation.*Discrete.*FlattenObservation"):
        WRAPPERS[wrapper](env)


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_env_without_task_api_raises(wrapper):
    with pytest.raises(ValueError, match="task API.*metarl/<Name>-v0"):
        WRAPPERS[wrapper](gymnasium.make("CartPole-v1"))


def test_rl2_unsupported_action_space_raises():
    env = _TinyTaskEnv(spaces.Box(0, 1, (2,), np.float32), spaces.MultiDiscrete([2, 3]))
    with pytest.raises(ValueError, match="Box or Discrete action space"):
        RL2Trial(env, 2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_rl2_episodes_per_trial_is_validated(bad):
    with pytest.raises(ValueError, match="episodes_per_trial must be an int >= 1"):
        RL2Trial(gymnasium.make(NAV), bad)


def test_rl2_step_outside_a_trial_raises():
    env = RL2Trial(gymnasium.make(NAV, max_episode_steps=1), 1)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    *_, truncated, _ = env.step(np.zeros(2, np.float32))
    assert truncated
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(np.zeros(2, np.float32))


def test_rl2_bad_discrete_action_raises():
    env = RL2Trial(gymnasium.make(BANDIT), 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(7)


# ---------------------------------------------------------------------------- RL² trials
def _nav_trial(k: int, max_episode_steps: int = 5) -> RL2Trial:
    return RL2Trial(gymnasium.make(NAV, max_episode_steps=max_episode_steps), k)


def test_rl2_trial_ends_after_exactly_k_inner_episodes():
    env = _nav_trial(k=3)
    assert env.trial_horizon == 15
    env.set_task(FAR_GOAL)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    episode_ids, ends, steps = [], [], 0
    while True:
        _, _, terminated, truncated, info = env.step(rng.uniform(-0.1, 0.1, 2))
        steps += 1
        assert terminated is False
        episode_ids.append(info["episode_in_trial"])
        if "inner_episode_return" in info:
            ends.append(steps)
            assert info["inner_episode_length"] == 5 and info["inner_terminated"] is False
        if truncated:
            break
        assert steps < 100, "the trial did not end"
    assert steps == 15 and ends == [5, 10, 15]
    assert episode_ids == [0] * 5 + [1] * 5 + [2] * 5


def test_rl2_inner_termination_continues_the_trial():
    """Navigation terminates at the goal: the trial goes on, only its end is reported."""
    env = _nav_trial(k=3, max_episode_steps=100)
    obs, _ = env.reset(options={"task": {"goal": [0.05, 0.0]}})
    results = [env.step(np.array([0.05, 0.0])) for _ in range(3)]
    for i, (obs, reward, terminated, truncated, info) in enumerate(results):
        assert info["inner_terminated"] is True and info["episode_in_trial"] == i
        assert terminated is False and truncated is (i == 2)
        assert reward == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(info["inner_final_observation"], [0.05, 0.0])
        head = [0.05, 0.0] if i == 2 else [0.0, 0.0]  # next episode's start, or the last obs
        np.testing.assert_allclose(obs, np.float32([*head, 0.05, 0.0, reward, 1.0]))


def test_rl2_observation_fields_are_what_was_fed_and_returned():
    """prev action (clipped), prev reward, done flag; and the task stays one goal across the
    trial: each reward is -||pos - goal|| with pos recomputed here from the actions."""
    k, horizon = 3, 4
    env = _nav_trial(k=k, max_episode_steps=horizon)
    assert env.observation_layout == {
        "obs": slice(0, 2),
        "prev_action": slice(2, 4),
        "prev_reward": slice(4, 5),
        "done": slice(5, 6),
    }
    inf = np.inf
    np.testing.assert_array_equal(
        env.observation_space.low, np.float32([-inf, -inf, -0.1, -0.1, -inf, 0])
    )
    np.testing.assert_array_equal(
        env.observation_space.high, np.float32([inf, inf, 0.1, 0.1, inf, 1])
    )
    assert env.observation_space.dtype == np.float32
    obs, info = env.reset(seed=4)
    goal = np.asarray(env.get_task()["goal"])
    np.testing.assert_array_equal(obs, np.zeros(6, np.float32))
    assert info["episode_in_trial"] == 0
    rng = np.random.default_rng(1)
    pos, inner_return, truncated, t = np.zeros(2), 0.0, False, 0
    while not truncated:
        action = rng.uniform(-0.3, 0.3, 2)  # partly outside the box [-0.1, 0.1]
        obs, reward, _, truncated, info = env.step(action)
        t += 1
        clipped = np.clip(action, -0.1, 0.1)
        pos = pos + clipped
        assert reward == pytest.approx(-np.linalg.norm(pos - goal), abs=1e-12)
        assert env.unwrapped.get_task()["goal"] == list(goal)
        inner_return += reward
        ended = t % horizon == 0
        np.testing.assert_array_equal(obs[2:4], clipped.astype(np.float32))
        assert obs[4] == np.float32(reward)
        assert obs[5] == (1.0 if ended else 0.0)
        if ended:
            assert info["inner_episode_return"] == pytest.approx(inner_return)
            np.testing.assert_allclose(info["inner_final_observation"], pos, atol=1e-6)
            inner_return = 0.0
            if not truncated:
                pos = np.zeros(2)
        else:
            assert "inner_episode_return" not in info
        np.testing.assert_allclose(obs[:2], pos, atol=1e-6)
    assert t == k * horizon


def test_rl2_discrete_previous_action_is_one_hot():
    env = RL2Trial(gymnasium.make(BANDIT, max_episode_steps=3), 2)
    env.set_task({"probs": [0.0, 1.0, 0.0, 1.0, 0.0]})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1 + 5 + 2,)
    np.testing.assert_array_equal(obs, np.zeros(8, np.float32))
    np.testing.assert_array_equal(env.observation_space.high[1:6], np.ones(5, np.float32))
    for t, action in enumerate([3, np.int64(0), np.array(1), 4, 2, 3], start=1):
        obs, reward, _, truncated, _ = env.step(action)
        one_hot = np.zeros(5, np.float32)
        one_hot[int(action)] = 1.0
        np.testing.assert_array_equal(obs[1:6], one_hot)
        assert reward == float(int(action) in (1, 3)) == obs[6]
        assert obs[7] == float(t % 3 == 0)
        assert truncated is (t == 6)


def _task_of_trial(env: RL2Trial, **reset_kwargs) -> dict:
    env.reset(**reset_kwargs)
    return env.get_task()


def test_rl2_task_choice_across_trials():
    env = _nav_trial(k=1)
    env.set_task(FAR_GOAL)
    assert env.get_task() == FAR_GOAL  # before any trial: the task of set_task
    env.clear_task()
    assert env.get_task() is None
    env.reset(seed=0)
    fresh = [_task_of_trial(env) for _ in range(3)]
    assert fresh[0] != fresh[1] != fresh[2] != fresh[0]  # a new trial draws a new task
    env.set_task(FAR_GOAL)
    assert env.get_task() == fresh[2]  # the running trial keeps its task
    assert _task_of_trial(env) == FAR_GOAL == _task_of_trial(env)  # set_task: every trial
    other = {"goal": [0.1, 0.2]}
    assert _task_of_trial(env, options={"task": other}) == other  # options: this trial only
    assert _task_of_trial(env) == FAR_GOAL
    env.clear_task()
    assert _task_of_trial(env) != FAR_GOAL
    with pytest.raises(ValueError, match="unknown task keys"):
        env.set_task({"velocity": 1.0})


def test_rl2_task_is_fixed_over_the_trial_even_if_drawn():
    env = _nav_trial(k=3, max_episode_steps=2)
    env.reset(seed=2)
    task = env.get_task()
    truncated = False
    while not truncated:
        *_, truncated, info = env.step(np.zeros(2, np.float32))
        assert info["task"] == task == env.unwrapped.get_task()


def test_rl2_inner_episodes_match_the_plain_env():
    """Inner episodes equal a plain env reset with the same seed and task, then stepped with the
    same actions and reset (unseeded) at each episode end: observations and rewards."""
    k, horizon, seed = 3, 4, 7
    env = RL2Trial(gymnasium.make(CHEETAH, max_episode_steps=horizon), k)
    plain = gymnasium.make(CHEETAH, max_episode_steps=horizon)
    obs, _ = env.reset(seed=seed)
    ref, _ = plain.reset(seed=seed, options={"task": env.get_task()})
    n = ref.size
    np.testing.assert_array_equal(obs[:n], ref.astype(np.float32))
    rng = np.random.default_rng(0)
    for t in range(1, k * horizon + 1):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        obs, reward, _, truncated, _ = env.step(action)
        ref, ref_reward, _, ref_truncated, _ = plain.step(action)
        assert reward == ref_reward and ref_truncated is (t % horizon == 0)
        if ref_truncated and not truncated:
            ref, _ = plain.reset()
        np.testing.assert_array_equal(obs[:n], ref.astype(np.float32))
        np.testing.assert_array_equal(obs[n : n + 6], action)
        assert truncated is (t == k * horizon)


def test_rl2_same_seed_same_trial():
    def trial(seed: int) -> tuple[dict, np.ndarray]:
        env = RL2Trial(gymnasium.make(BANDIT, max_episode_steps=5), 2)
        first, _ = env.reset(seed=seed)
        rows, truncated, t = [first], False, 0
        while not truncated:
            obs, _, _, truncated, _ = env.step(t % 5)
            rows.append(obs)
            t += 1
        return env.get_task(), np.stack(rows)

    task_a, run_a = trial(11)
    task_b, run_b = trial(11)
    task_c, run_c = trial(12)
    assert task_a == task_b and task_a != task_c
    np.testing.assert_array_equal(run_a, run_b)
    assert not np.array_equal(run_a, run_c)


# ---------------------------------------------------------------------------- SB3 smoke
def _moved(model, steps: int) -> bool:
    import torch

    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(steps)
    assert model.num_timesteps == steps
    return any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))


def test_ppo_on_the_oracle():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = TaskInObservation(gymnasium.make(NAV, max_episode_steps=20))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    assert _moved(model, 256)


def test_recurrent_ppo_on_rl2_trials():
    import torch
    from sb3_contrib import RecurrentPPO

    torch.set_num_threads(1)
    env = RL2Trial(gymnasium.make(NAV, max_episode_steps=5), episodes_per_trial=3)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"lstm_hidden_size": 16, "net_arch": [16]},
    )
    assert _moved(model, 256)
