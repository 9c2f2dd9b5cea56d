"""Task API errors/ranges, reward formulas against the MAML paper's definitions, instability handling."""

import math
import pickle
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import pytest

import envs  # noqa: F401


def make(env_id, **kw):
    return gymnasium.make(env_id, **kw).unwrapped


# ----------------------------------------------------------------------------- task API
def test_task_api_basics():
    env = make("metarl/HalfCheetahVel-v0")
    tasks = env.sample_tasks(5, np.random.default_rng(0))
    assert all(type(t["velocity"]) is float and 0 <= t["velocity"] <= 2 for t in tasks)
    env.set_task({"velocity": 2.5})  # outside training range, valid: accepted
    assert env.get_task() == {"velocity": 2.5}
    _, info = env.reset(seed=0)
    assert info["task"] == {"velocity": 2.5}
    env.action_space.seed(0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["task"] == {"velocity": 2.5}
    _, info = env.reset(options={"task": {"velocity": 1.0}})
    assert info["task"] == {"velocity": 1.0}


def test_unset_task_is_sampled_per_reset():
    env = make("metarl/Navigation2D-v0")
    _, i1 = env.reset(seed=0)
    _, i2 = env.reset()
    assert i1["task"] != i2["task"]
    assert all(-0.5 <= g <= 0.5 for g in i1["task"]["goal"] + i2["task"]["goal"])


@pytest.mark.parametrize(
    "env_id, task, match",
    [
        ("metarl/HalfCheetahVel-v0", {"speed": 1.0}, "valid keys.*velocity"),
        ("metarl/HalfCheetahVel-v0", {"velocity": "fast"}, "number"),
        ("metarl/HalfCheetahVel-v0", {"velocity": math.nan}, "finite"),
        ("metarl/HalfCheetahVel-v0", {"velocity": True}, "number"),
        ("metarl/HalfCheetahVel-v0", {"velocity": 99.0}, r"valid range \[-10, 10\]"),
        ("metarl/HalfCheetahVel-v0", [1.0], "dict"),
        ("metarl/Navigation2D-v0", {"goal": [0.1]}, "shape"),
        ("metarl/AntDir-v0", {"direction": 2.0}, "range"),
        ("metarl/PendulumDynamics-v0", {"mass": -1.0, "length": 1.0, "gravity": 9.8}, "range"),
        ("metarl/Bandit-v0", {"probs": [0.1, 0.2, 0.3, 0.4, 1.5]}, "range"),
        ("metarl/TabularMDP-v0", None, "sum to 1"),
    ],
)
def test_invalid_tasks_raise(env_id, task, match):
    env = make(env_id)
    if task is None:
        task = env.sample_tasks(1, np.random.default_rng(0))[0]
        task["transitions"][0][0][0] += 0.5
    with pytest.raises(ValueError, match=match):
        env.set_task(task)


def test_tasks_are_json_able():
    import json

    for env_id in envs.registered_ids():
        env = make(env_id)
        task = env.sample_tasks(2, np.random.default_rng(1))[1]
        assert json.loads(json.dumps(task)) == task


# ----------------------------------------------------------------------------- rewards
def test_navigation_reward():
    env = make("metarl/Navigation2D-v0")
    env.reset(options={"task": {"goal": [0.3, -0.2]}})
    obs, r, term, _, _ = env.step(np.array([0.5, -0.05]))  # clipped to 0.1
    np.testing.assert_allclose(obs, [0.1, -0.05], atol=1e-7)
    assert r == pytest.approx(-math.hypot(0.1 - 0.3, -0.05 + 0.2))
    assert not term
    env.reset(options={"task": {"goal": [0.005, 0.0]}})
    assert env.step(np.zeros(2))[2]  # within 0.01: terminates


def _x_vel_step(env, a):
    x0 = env.data.qpos[0]
    out = env.step(a)
    return out, (env.data.qpos[0] - x0) / env.dt


def test_half_cheetah_rewards():
    rng = np.random.default_rng(0)
    for env_id, task, f in [
        ("metarl/HalfCheetahVel-v0", {"velocity": 1.3}, lambda v, a: -abs(v - 1.3)),
        ("metarl/HalfCheetahDir-v0", {"direction": -1.0}, lambda v, a: -v),
    ]:
        env = make(env_id)
        env.reset(seed=0, options={"task": task})
        for _ in range(5):
            a = rng.uniform(-1, 1, 6)
            (_, r, _, _, info), v = _x_vel_step(env, a)
            assert r == pytest.approx(f(v, a) - 0.05 * np.sum(a**2), rel=1e-9)
            assert info["reward_ctrl"] == pytest.approx(-0.05 * np.sum(a**2), rel=1e-12)


def _rllab_body_com(env):
    """rllab's ``get_body_com("torso")`` / ``get_body_comvel("torso")``, computed independently:
    mass-weighted body centres of mass and ``mj_objectVelocity`` of every body, at the state."""
    m, d = env.model, mujoco.MjData(env.model)
    d.qpos[:], d.qvel[:] = env.data.qpos, env.data.qvel
    mujoco.mj_forward(m, d)
    mass = m.body_mass[1:, None]
    vel = np.zeros((m.nbody, 6))
    for i in range(1, m.nbody):
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, i, vel[i], 0)
    return (mass * d.xipos[1:]).sum(0) / mass.sum(), (mass * vel[1:, 3:]).sum(0) / mass.sum()


def test_half_cheetah_maml_code_observation_and_velocity():
    """observe_com / velocity="com": the MAML code's 20-d observation and centre-of-mass velocity."""
    rng = np.random.default_rng(1)
    env = make("metarl/HalfCheetahVel-v0", observe_com=True, velocity="com")
    assert env.observation_space.shape == (20,)
    obs, _ = env.reset(seed=0, options={"task": {"velocity": 1.3}})
    np.testing.assert_allclose(obs[17:], _rllab_body_com(env)[0], atol=1e-12)
    root_differs = False
    for _ in range(20):
        a = rng.uniform(-1, 1, 6)
        (obs, r, *_), v_root = _x_vel_step(env, a)
        com, com_vel = _rllab_body_com(env)
        np.testing.assert_allclose(obs[:17], np.concatenate([env.data.qpos[1:], env.data.qvel]))
        np.testing.assert_allclose(obs[17:], com, atol=1e-12)
        assert r == pytest.approx(-abs(com_vel[0] - 1.3) - 0.05 * np.sum(a**2), rel=1e-9)
        root_differs |= abs(com_vel[0] - v_root) > 1e-3
    assert root_differs  # the option changes the reward, not just its name
    with pytest.raises(ValueError, match="velocity must be 'root'.*or 'com'"):
        make("metarl/HalfCheetahDir-v0", velocity="torso")


def test_half_cheetah_timing_is_the_maml_codes():
    """rllab's cheetah: 0.01 s timestep, no frame skip; v5's timing stays one kwarg away."""
    for env_id in ("metarl/HalfCheetahVel-v0", "metarl/HalfCheetahDir-v0"):
        env = make(env_id)
        assert (env.frame_skip, env.dt) == (1, pytest.approx(0.01))
        env.reset(seed=0)
        t0 = env.data.time
        env.step(np.zeros(6))
        assert env.data.time - t0 == pytest.approx(0.01)
        v5 = make(env_id, frame_skip=5)
        assert v5.dt == pytest.approx(0.05)
        v5.reset(seed=0)
        t0 = v5.data.time
        v5.step(np.zeros(6))
        assert v5.data.time - t0 == pytest.approx(0.05)


def test_ant_timing_is_the_maml_codes():
    """rllab's ant.xml: 0.02 s RK4 steps, no frame skip; v5's timing is two kwargs away and then
    steps exactly as Gymnasium's Ant-v5 does from the same state and action."""
    for env_id in ("metarl/AntVel-v0", "metarl/AntDir-v0", "metarl/AntGoal-v0"):
        env = make(env_id)
        assert (env.frame_skip, env.model.opt.timestep) == (1, pytest.approx(0.02))
        env.reset(seed=0)
        t0 = env.data.time
        env.step(np.zeros(8))
        assert env.data.time - t0 == pytest.approx(0.02) and env.dt == pytest.approx(0.02)
    ours = make("metarl/AntDir-v0", timestep=0.01, frame_skip=5)
    v5 = gymnasium.make("Ant-v5").unwrapped
    assert ours.dt == pytest.approx(0.05) == v5.dt
    ours.reset(seed=0)
    v5.reset(seed=0)
    v5.set_state(ours.data.qpos.copy(), ours.data.qvel.copy())
    action = np.random.default_rng(1).uniform(-1, 1, 8)
    ours.step(action)
    v5.step(action)
    np.testing.assert_allclose(ours.data.qpos, v5.data.qpos, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="timestep must be > 0"):
        make("metarl/AntVel-v0", timestep=0.0)
    with pytest.raises(ValueError, match="goal_bonus must be a finite number"):
        make("metarl/AntGoal-v0", goal_bonus=float("nan"))


def test_ant_rewards():
    rng = np.random.default_rng(0)
    for env_id, task in [
        ("metarl/AntVel-v0", {"velocity": 1.5}),
        ("metarl/AntDir-v0", {"direction": 1.0}),
        ("metarl/AntGoal-v0", {"goal": [1.0, -2.0]}),
    ]:
        env = make(env_id)
        env.reset(seed=0, options={"task": task})
        for _ in range(5):
            a = rng.uniform(-1, 1, 8)
            xy0 = env.data.body("torso").xpos[:2].copy()
            _, r, term, _, _ = env.step(a)
            xy = env.data.body("torso").xpos[:2].copy()
            vx = (xy[0] - xy0[0]) / env.dt
            costs = 0.005 * np.sum(a**2) + 0.0005 * np.sum(np.clip(env.data.cfrc_ext, -1, 1) ** 2)
            if "Vel" in env_id:
                exp = -abs(vx - 1.5) + 1.0
            elif "Dir" in env_id:
                exp = vx
            else:
                exp = -np.sum(np.abs(xy - [1.0, -2.0])) + 4.0
            z = env.data.qpos[2]
            healthy = 0.2 <= z <= 1.0
            assert r == pytest.approx(exp - costs + 0.05 * healthy, rel=1e-9, abs=1e-12)
            assert term == (not healthy)


def test_ant_com_velocity_is_the_maml_codes():
    """velocity="com" (AntVel, AntDir): the reward's v_x is the whole body's centre-of-mass
    velocity after the step (rllab's ``get_body_comvel("torso")``, computed independently), which
    the torso's own velocity (the default) differs from."""
    rng = np.random.default_rng(2)
    for env_id, task, f in [
        ("metarl/AntVel-v0", {"velocity": 1.5}, lambda v: -abs(v - 1.5) + 1.0),
        ("metarl/AntDir-v0", {"direction": -1.0}, lambda v: -v),
    ]:
        env = make(env_id, velocity="com")
        env.reset(seed=0, options={"task": task})
        torso_differs = False
        for _ in range(10):
            a = rng.uniform(-1, 1, 8)
            x0 = env.data.qpos[0]
            _, r, term, _, info = env.step(a)
            com_vel = _rllab_body_com(env)[1][0]
            costs = 0.005 * np.sum(a**2) + 0.0005 * np.sum(np.clip(env.data.cfrc_ext, -1, 1) ** 2)
            healthy = 0.2 <= env.data.qpos[2] <= 1.0
            assert r == pytest.approx(f(com_vel) - costs + 0.05 * healthy, rel=1e-9, abs=1e-12)
            assert info["x_velocity"] == pytest.approx(com_vel, rel=1e-9, abs=1e-12)
            torso_differs |= abs(com_vel - (env.data.qpos[0] - x0) / env.dt) > 1e-3
            if term:
                break
        assert torso_differs  # the option changes the reward, not just its name
    with pytest.raises(ValueError, match="velocity must be 'root'.*or 'com'"):
        make("metarl/AntDir-v0", velocity="torso")


def test_ant_goal_observes_its_position():
    """A goal task's policy must see where it is: AntGoal's observation starts with the free
    joint's (x, y), single and batched (the MAML code's observation had the full qpos); the
    velocity and direction tasks keep v5's observation without them."""
    env = make("metarl/AntGoal-v0")
    venv = gymnasium.make_vec(
        "metarl/AntGoal-v0", num_envs=2, vectorization_mode="vector_entry_point"
    ).unwrapped
    obs, _ = env.reset(seed=0, options={"task": {"goal": [2.0, 1.0]}})
    vobs, _ = venv.reset(seed=0, options={"task": {"goal": [2.0, 1.0]}})
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-1, 1, 8)
        obs, *_ = env.step(a)
        vobs, *_ = venv.step(np.stack([a, a]))
    assert obs.shape == (107,) and vobs.shape == (2, 107)
    np.testing.assert_array_equal(obs[:2], env.data.qpos[:2])
    np.testing.assert_array_equal(vobs[:, :2], venv.qpos[:, :2])
    assert np.all(env.data.qpos[:2] != 0)  # not a zero that any observation would match
    for env_id in ("metarl/AntVel-v0", "metarl/AntDir-v0"):
        assert make(env_id).observation_space.shape == (105,)
    legacy = make("metarl/AntGoal-v0", exclude_current_positions_from_observation=True)
    assert legacy.observation_space.shape == (105,)


def promp_config_env(name):
    """The env of ``configs/promp/NAME`` (its id and kwargs) and its horizon."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    env_cfg = yaml.safe_load((root / "configs" / "promp" / name).read_text())["env"]
    return make(env_cfg["id"], **env_cfg["kwargs"]), env_cfg["horizon"]


def test_promp_half_cheetah_vel_config_gives_promps_half_cheetah_rand_vel():
    """configs/promp/half_cheetah_vel.yaml: ProMP's HalfCheetahRandVelEnv, targets U[0, 3],
    reward -|v_x - v*| - 0.05 |a|^2 with v_x the root's finite difference over 0.05 s."""
    env, horizon = promp_config_env("half_cheetah_vel.yaml")
    assert env.dt == pytest.approx(0.05) and horizon == 100
    targets = [t["velocity"] for t in env.sample_tasks(500, np.random.default_rng(0))]
    assert 0.0 <= min(targets) < 0.1 and 2.9 < max(targets) <= 3.0
    rng = np.random.default_rng(0)
    env.reset(seed=0, options={"task": {"velocity": 2.5}})
    for _ in range(10):
        a = rng.uniform(-1, 1, 6)
        x0 = env.data.qpos[0]
        _, r, term, _, _ = env.step(a)
        vx = (env.data.qpos[0] - x0) / 0.05
        assert not term and r == pytest.approx(-abs(vx - 2.5) - 0.05 * np.sum(a**2))


def test_promp_ant_dir_config_gives_promps_ant_rand_direc():
    """configs/promp/ant_dir.yaml's env kwargs turn AntDir into ProMP's AntRandDirecEnv: gym's
    0.01 s x 5 timing, reward d * v_x - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext)|^2 + 1 while the torso's
    z stays in [0, 1] (the formula written from their code, not from ours)."""
    env, horizon = promp_config_env("ant_dir.yaml")
    assert env.dt == pytest.approx(0.05) and horizon == 100
    rng = np.random.default_rng(0)
    for direction in (1.0, -1.0):
        env.reset(seed=0, options={"task": {"direction": direction}})
        for _ in range(20):
            a = rng.uniform(-1, 1, 8)
            x0 = env.data.body("torso").xpos[0]
            _, r, term, _, _ = env.step(a)
            vx = (env.data.body("torso").xpos[0] - x0) / 0.05
            contact = 0.5e-3 * np.sum(np.square(np.clip(env.data.cfrc_ext, -1, 1)))
            alive = 0.0 <= env.data.qpos[2] <= 1.0
            assert term == (not alive)
            if term:
                break
            assert r == pytest.approx(direction * vx - 0.5 * np.sum(a**2) - contact + 1.0)


def test_rand_params_scales_model():
    env = make("metarl/HalfCheetahRandParams-v0")
    base = env.model.body_mass.copy()
    task = env.sample_tasks(1, np.random.default_rng(0))[0]
    env.set_task(task)
    np.testing.assert_allclose(env.model.body_mass, base * 1.5 ** np.asarray(task["body_mass"]))
    assert np.all(np.abs(np.asarray(task["dof_damping"])) <= 3)


def test_classic_dynamics_apply():
    env = make("metarl/CartPoleDynamics-v0")
    env.set_task({"gravity": 3.0, "masscart": 2.0, "masspole": 0.5, "length": 1.0, "motor_gain": 2})
    assert env.total_mass == 2.5 and env.polemass_length == 0.5 and env.force_mag == 20.0
    p = make("metarl/PendulumDynamics-v0")
    p.set_task({"mass": 2.0, "length": 0.5, "gravity": 12.0})
    assert (p.m, p.l, p.g) == (2.0, 0.5, 12.0)


def test_a_reversed_cartpole_motor_pushes_the_other_way():
    """motor_gain -1: pushing right moves the cart as Gymnasium's own CartPole pushing left."""
    cart = make("metarl/CartPoleDynamics-v0")
    cart.set_task(cart.complete_task({"motor_gain": -1.0}))
    reference = gymnasium.make("CartPole-v1").unwrapped
    start = [0.01, -0.02, 0.03, 0.04]
    cart.reset(seed=0, options={"state": start})
    reference.reset(seed=0)
    reference.state = np.array(start)
    for action in (1, 1, 0, 1):
        ours, *_ = cart.step(action)
        theirs, *_ = reference.step(1 - action)
        np.testing.assert_allclose(ours, theirs)


def test_cartpole_draws_polarity_only_when_asked_and_its_other_draws_stay():
    """motor_gain's default (the single choice 1) draws no random number: a seed draws the same
    physics as the four uniform draws per task it made before the parameter existed."""
    rng = np.random.default_rng(3)
    expected = [
        [
            rng.uniform(4.9, 14.7),
            rng.uniform(0.5, 2.0),
            rng.uniform(0.05, 0.2),
            rng.uniform(0.25, 1),
        ]
        for _ in range(5)
    ]
    tasks = make("metarl/CartPoleDynamics-v0").sample_tasks(5, np.random.default_rng(3))
    keys = ("gravity", "masscart", "masspole", "length")
    assert [[t[k] for k in keys] for t in tasks] == expected
    assert {t["motor_gain"] for t in tasks} == {1.0}
    both = gymnasium.make("metarl/CartPoleDynamics-v0", task_range={"motor_gain": [-1, 1]})
    drawn = both.unwrapped.sample_tasks(200, np.random.default_rng(0))
    share = np.mean([t["motor_gain"] == -1.0 for t in drawn])
    assert {t["motor_gain"] for t in drawn} == {-1.0, 1.0} and 0.4 < share < 0.6


def test_a_partial_dynamics_task_keeps_the_unmodified_env_elsewhere():
    """What `metarl adapt --task body_mass=1.0` passes: one number for a vector parameter
    scales every element; the parameters left out keep the unmodified model."""
    env = make("metarl/HalfCheetahRandParams-v0")
    base_mass, base_damping = env.model.body_mass.copy(), env.model.dof_damping.copy()
    env.set_task(env.complete_task({"body_mass": 1.0}))
    np.testing.assert_allclose(env.model.body_mass, base_mass * 1.5)
    np.testing.assert_allclose(env.model.dof_damping, base_damping)
    cart = make("metarl/CartPoleDynamics-v0")
    cart.set_task(cart.complete_task({"gravity": 30.0}))  # outside the training range [4.9, 14.7]
    reference = gymnasium.make("CartPole-v1").unwrapped  # Gymnasium's own constants
    assert cart.gravity == 30.0 and cart.masspole == reference.masspole
    assert (cart.masscart, cart.length) == (reference.masscart, reference.length)
    pendulum = make("metarl/PendulumDynamics-v0")
    pendulum.set_task(pendulum.complete_task({"mass": 3.0}))
    assert (pendulum.l, pendulum.g) == (1.0, gymnasium.make("Pendulum-v1").unwrapped.g)
    with pytest.raises(ValueError, match="'velocity' has no default; give it"):
        make("metarl/HalfCheetahVel-v0").complete_task({})
    with pytest.raises(ValueError, match="unknown task keys"):
        cart.complete_task({"gravty": 3.0})


# ----------------------------------------------------------------------------- instability
def test_single_env_nan_terminates():
    env = make("metarl/HalfCheetahVel-v0")
    env.reset(seed=0)
    env.data.qvel[0] = np.nan
    obs, r, term, _, info = env.step(np.zeros(6))
    assert term and info["sim_unstable"] and np.isfinite(obs).all() and r == 0.0


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"])
def test_batched_nan_isolated(env_id):
    venv = gymnasium.make_vec(env_id, num_envs=4, nthread=2)
    venv.reset(seed=0)
    act = np.zeros((4, venv.single_action_space.shape[0]))
    venv.step(act)
    venv.unwrapped.qvel[1, 0] = np.nan
    obs, rew, term, trunc, info = venv.step(act)
    assert info["sim_unstable"].tolist() == [False, True, False, False]
    assert term[1] and np.isfinite(obs).all() and np.isfinite(rew).all()
    obs, rew, term, trunc, info = venv.step(act)  # copy 1 autoresets, others keep going
    assert not info["sim_unstable"].any() and np.isfinite(venv.unwrapped.qvel).all()
    np.testing.assert_array_equal(rew[1], 0.0)


def test_batched_huge_velocity_diverges_safely():
    venv = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=3, nthread=1)
    venv.reset(seed=0)
    venv.unwrapped.qvel[2, :] = 1e12
    obs, rew, term, trunc, info = venv.step(np.zeros((3, 6)))
    assert np.isfinite(obs).all() and np.isfinite(rew).all()
    # MuJoCo's bad-qvel/qacc warnings fire on this state (so does 1e6: its accelerations),
    # deterministically; the copy ends with reward 0 and the others are untouched
    assert info["sim_unstable"].tolist() == [False, False, True]
    assert term.tolist() == [False, False, True] and rew[2] == 0.0


def test_promp_ant_goal_config_gives_promps_ant_rand_goal():
    """configs/promp/ant_goal.yaml's env kwargs turn AntGoal into ProMP's AntRandGoalEnv: goals
    from the disk of radius 3, reward -|xy_torso - g|_1 - 0.1 |a|^2
    - 5e-4 |clip(cfrc_ext)|^2 with no bonus, and no early end even with the torso on its back."""
    env, horizon = promp_config_env("ant_goal.yaml")
    assert env.dt == pytest.approx(0.05) and horizon == 100
    # the disk's sampling itself (area-uniform) is tested in test_task_range.py
    assert [p.radius for p in env.sampling_params()] == [3.0]
    rng = np.random.default_rng(0)
    goal = [1.5, -2.0]
    env.reset(seed=0, options={"task": {"goal": goal}})
    env.unwrapped.data.qpos[2] = 2.0  # far outside v5's healthy z range
    for _ in range(20):
        a = rng.uniform(-1, 1, 8)
        _, r, term, _, _ = env.step(a)
        xy = env.unwrapped.data.body("torso").xpos[:2]
        contact = 0.5e-3 * np.sum(np.square(np.clip(env.unwrapped.data.cfrc_ext, -1, 1)))
        assert not term
        assert r == pytest.approx(-np.sum(np.abs(xy - goal)) - 0.1 * np.sum(a**2) - contact)
    assert pickle.loads(pickle.dumps(env))._goal_bonus == 0.0  # the kwarg survives pickling
