"""Batched fast path == single env on recorded trajectories, for every family with one."""

import gymnasium
import numpy as np
import pytest

import envs
from envs.registry import FAMILIES

FAST = [f.id for f in FAMILIES if f.vector_entry_point]
# families with options that change what the batched path computes
OPTIONS = [
    ("metarl/HalfCheetahVel-v0", {"observe_com": True, "velocity": "com"}),
    ("metarl/HalfCheetahDir-v0", {"velocity": "com"}),
    ("metarl/AntVel-v0", {"velocity": "com"}),
    ("metarl/AntDir-v0", {"velocity": "com"}),
    ("metarl/CartPoleDynamics-v0", {"task_range": {"motor_gain": [-1]}}),  # a reversed motor
]
N = 3
STEPS = 25
# Gymnasium's Pendulum computes the torque term in float32 (a float32 action times a Python
# float stays float32 under NEP 50); the batched path computes it in float64. The difference is
# float32 rounding, grown over STEPS steps: up to ~4e-8 on unit-scale observations. 1e-6 is ~8
# float32 ulps at 1, far below what a wrong formula or a misrouted task would give.
ATOL = 1e-6


def _deterministic_task(u, rng):
    """A task whose dynamics/rewards do not use the env RNG (bandit, tabular)."""
    name = type(u).__name__
    if name == "BanditEnv":
        return {"probs": rng.integers(0, 2, u.k).astype(float).tolist()}
    if name == "TabularMDPEnv":
        nxt = rng.integers(0, u.S, (u.S, u.A))
        P = np.eye(u.S)[nxt]
        return {"transitions": P.tolist(), "rewards": rng.uniform(0, 1, (u.S, u.A)).tolist()}
    return u.sample_tasks(1, rng)[0]


def _state(u):
    if hasattr(u, "data"):
        return {"qpos": u.data.qpos.copy(), "qvel": u.data.qvel.copy()}
    name = type(u).__name__
    if name == "Navigation2DEnv":
        return {"position": u._pos.copy()}
    if name in ("CartPoleDynamicsEnv", "PendulumDynamicsEnv"):
        return {"state": np.array(u.state, dtype=float)}
    if name == "TabularMDPEnv":
        return {"state": u._s}
    return {}


def _batched_options(state):
    key = {"qpos": "qpos", "qvel": "qvel", "position": "positions", "state": "states"}
    return {key[k]: np.stack([np.asarray(v)] * N) for k, v in state.items()}


@pytest.mark.parametrize("env_id,kwargs", [(i, {}) for i in FAST] + OPTIONS)
def test_batched_equals_single(env_id, kwargs):
    rng = np.random.default_rng(0)
    env = gymnasium.make(env_id, **kwargs)
    u = env.unwrapped
    env.action_space.seed(int(rng.integers(2**31)))  # the same actions on every run
    tasks = [_deterministic_task(u, rng) for _ in range(N)]
    records = []
    for task in tasks:
        obs, _ = env.reset(seed=int(rng.integers(1000)), options={"task": task})
        state = _state(u)
        acts, rows = [], [(obs, 0.0, False)]
        for _ in range(STEPS):
            a = env.action_space.sample()
            obs, r, term, trunc, info = env.step(a)
            acts.append(a)
            rows.append((obs, r, term, info.get("reward_ctrl")))
            if term or trunc:
                break
        records.append((state, acts, rows))
    venv = gymnasium.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)
    assert venv.single_observation_space == env.observation_space
    assert venv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    venv.set_tasks(tasks)
    assert venv.get_tasks() == [u.validate_task(t) for t in tasks]
    # each copy i replays record i from record i's initial state
    opts = {}
    for i, (state, _, _) in enumerate(records):
        for k, v in _batched_options(state).items():
            opts.setdefault(k, np.zeros_like(v))[i] = v[i]
    obs, _ = venv.reset(seed=0, options=opts)
    for i, (_, _, rows) in enumerate(records):
        np.testing.assert_allclose(obs[i], rows[0][0], rtol=1e-6, atol=ATOL)
    done = np.zeros(N, bool)
    for t in range(STEPS):
        acts = np.stack([rec[1][min(t, len(rec[1]) - 1)] for rec in records])
        obs, rew, term, trunc, info = venv.step(acts)
        assert info["sim_unstable"].shape == (N,)
        for i, (_, a, rows) in enumerate(records):
            if done[i] or t >= len(a):
                continue
            np.testing.assert_allclose(obs[i], rows[t + 1][0], rtol=1e-6, atol=ATOL)
            np.testing.assert_allclose(rew[i], rows[t + 1][1], rtol=1e-6, atol=ATOL)
            assert bool(term[i]) == bool(rows[t + 1][2])
            if rows[t + 1][3] is not None:  # the MuJoCo families' control term
                np.testing.assert_allclose(info["reward_ctrl"][i], rows[t + 1][3], rtol=1e-6)
        done |= term
    venv.close()


def test_truncation_and_autoreset_navigation():
    venv = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=4, max_episode_steps=5)
    venv.set_tasks([{"goal": [0.3, 0.3]}] * 4)
    obs, _ = venv.reset(seed=1)
    for _ in range(4):
        _, _, term, trunc, _ = venv.step(np.zeros((4, 2)))
        assert not trunc.any()
    _, _, term, trunc, _ = venv.step(np.zeros((4, 2)))
    assert trunc.all() and not term.any()
    obs, rew, term, trunc, _ = venv.step(np.full((4, 2), 0.1))  # autoreset step
    np.testing.assert_array_equal(obs, 0.0)
    np.testing.assert_array_equal(rew, 0.0)
    assert not (term | trunc).any()


def test_batched_horizon_half_cheetah_and_reset_tasks():
    venv = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=2, nthread=1)
    assert venv.max_episode_steps == 200
    tasks = [{"velocity": 0.5}, {"velocity": 2.5}]
    venv.reset(seed=0, options={"tasks": tasks})
    assert venv.get_tasks() == tasks
    venv.call("set_task", {"velocity": 1.0})
    assert venv.get_tasks() == [{"velocity": 1.0}] * 2
    with pytest.raises(ValueError, match="num_envs|list of 2"):
        venv.set_tasks(tasks * 2)


def test_seeding_batched_same_seed_same_rollout():
    def roll():
        venv = gymnasium.make_vec("metarl/HalfCheetahDir-v0", num_envs=3, nthread=1)
        obs, _ = venv.reset(seed=7)
        out = [obs]
        for _ in range(5):
            out.append(venv.step(np.full((3, 6), 0.3))[0])
        return np.stack(out), venv.get_tasks()

    (a, ta), (b, tb) = roll(), roll()
    np.testing.assert_array_equal(a, b)
    assert ta == tb


def test_sync_vector_env_call_set_task():
    venv = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("metarl/Navigation2D-v0")] * 2)
    venv.call("set_task", {"goal": [0.2, -0.1]})
    venv.reset(seed=0)
    assert venv.call("get_task") == ({"goal": [0.2, -0.1]},) * 2
    venv.step(np.zeros((2, 2), np.float32))
    venv.close()
    assert envs.registered_ids()


def test_default_threads_follow_the_affinity_mask(monkeypatch):
    import os

    from envs import batched_mujoco

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert batched_mujoco.default_nthread() == 1  # pinned to one core of 64
    monkeypatch.delattr(os, "sched_getaffinity")
    assert batched_mujoco.default_nthread() == 16  # no mask (macOS): cpu_count, capped


def _hopper_venv(n):
    venv = gymnasium.make_vec("metarl/HopperRandParams-v0", num_envs=n, nthread=1)
    venv.set_tasks(venv.sample_tasks(n, np.random.default_rng(3)))
    return venv


def test_pause_ended_stops_finished_copies_and_leaves_the_others_unchanged():
    """Two identical Hopper batches, one pausing ended copies after every step: while a copy
    runs it sees the same observations and rewards in both; once paused it is not simulated
    (its state stays where the episode ended), reports zeros and no end flags; reset clears it."""
    n, rng = 6, np.random.default_rng(0)
    paused_env, plain_env = _hopper_venv(n), _hopper_venv(n)
    paused_env.reset(seed=5)
    plain_env.reset(seed=5)
    running = np.ones(n, dtype=bool)
    ended_state = {}
    for _ in range(200):
        actions = rng.uniform(-1, 1, (n, 3))
        a = paused_env.step(actions)
        b = plain_env.step(actions)
        for i in np.flatnonzero(running):
            np.testing.assert_array_equal(a[0][i], b[0][i])
            assert a[1][i] == b[1][i] and a[2][i] == b[2][i] and a[3][i] == b[3][i]
        for i, qpos in ended_state.items():
            np.testing.assert_array_equal(paused_env.unwrapped.qpos[i], qpos)
            np.testing.assert_array_equal(a[0][i], 0.0)
            assert a[1][i] == 0.0 and not a[2][i] and not a[3][i]
        ended = running & (a[2] | a[3])
        for i in np.flatnonzero(ended):
            ended_state[i] = paused_env.unwrapped.qpos[i].copy()
        np.testing.assert_array_equal(np.sort(paused_env.pause_ended()), np.flatnonzero(ended))
        running &= ~ended
        if not running.any():
            break
    assert len(ended_state) == n  # every copy ended (most fall early), so each was paused
    paused_env.reset(seed=6)
    qpos_before = paused_env.unwrapped.qpos.copy()
    paused_env.step(np.zeros((n, 3)))
    assert (paused_env.unwrapped.qpos != qpos_before).any(axis=1).all()  # all simulated again
    paused_env.close()
    plain_env.close()


def test_rollout_records_the_same_episodes_with_and_without_pausing():
    import torch

    from metarl.rl.policies import GaussianMLPPolicy
    from metarl.rl.sampling.rollout import rollout

    class NoPause:
        """The env without ``pause_ended`` (as a SyncVectorEnv of single envs is)."""

        def __init__(self, env):
            self._env = env

        def __getattr__(self, name):
            if name == "pause_ended":
                raise AttributeError(name)
            return getattr(self._env, name)

    policy = GaussianMLPPolicy(11, 3, (16, 16), "tanh", 0.0, torch.Generator().manual_seed(0))
    params = {k: v.detach() for k, v in policy.named_parameters()}
    tasks = gymnasium.make("metarl/HopperRandParams-v0").unwrapped.sample_tasks(
        2, np.random.default_rng(1)
    )

    def run(wrap):
        venv = gymnasium.make_vec("metarl/HopperRandParams-v0", num_envs=8, nthread=1)
        with torch.no_grad():
            out = rollout(wrap(venv), policy, params, tasks, 4, 200, np.random.default_rng(2))
        venv.close()
        return out

    paused, plain = run(lambda e: e), run(NoPause)
    assert paused["mask"].shape == plain["mask"].shape
    mask = plain["mask"].astype(bool)
    assert (~mask).any()  # some episodes ended before the longest one
    np.testing.assert_array_equal(paused["mask"], plain["mask"])
    for key in ("rewards", "reward_ctrl"):
        np.testing.assert_array_equal(paused[key], plain[key])
    for key in ("obs", "actions"):
        np.testing.assert_array_equal(paused[key][mask], plain[key][mask])
