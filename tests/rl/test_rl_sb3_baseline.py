"""The MAML paper's baselines trained by Stable-Baselines3 (``algo.name: sb3``)."""

from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import pytest
import torch
from rl_testing import small_config

from metarl.rl.config import RLConfig
from metarl.rl.experiment import RLExperiment, build
from metarl.rl.sb3_baseline import SB3BaselineExperiment


def baseline_config(method: str, **algo) -> RLConfig:
    """:func:`small_config` (Navigation2D, horizon 50, 10 held-out tasks, one test-time step)
    with ``algo`` replaced by a CI-sized SB3 baseline."""
    data = small_config().model_dump(mode="json")
    kwargs = {"n_steps": 64} if method == "pretrained" else {"n_steps": 64, "batch_size": 128}
    data["algo"] = {
        "name": "sb3",
        "method": method,
        "learner": "trpo" if method == "pretrained" else "ppo",
        "num_envs": 2,
        "env_steps_per_iteration": 128,
        "kwargs": kwargs,
        **algo,
    }
    return RLConfig.model_validate(data)


def sb3_params(experiment: SB3BaselineExperiment) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in experiment.model.policy.state_dict().items()}


@pytest.fixture(scope="module")
def pretrained():
    """A pretrained TRPO baseline after 6 iterations of 1,024 env steps."""
    cfg = baseline_config(
        "pretrained", env_steps_per_iteration=1024, num_envs=4, kwargs={"n_steps": 256}
    )
    experiment = build(cfg)
    returns = [experiment.train_iteration(i)["train/return"] for i in range(6)]
    yield experiment, returns
    experiment.close()


def test_pretrained_training_raises_the_return(pretrained):
    """TRPO on the whole goal distribution: the mean return of the recent training episodes
    rises (an untrained policy wanders; the best single policy stays near the start)."""
    _, returns = pretrained
    assert returns[-1] > returns[0] + 3, returns


def test_pretrained_policy_is_the_sb3_policy_and_is_evaluated_as_maml(pretrained):
    experiment, _ = pretrained
    obs = torch.randn(32, 2)
    with torch.no_grad():
        dist = experiment.model.policy.get_distribution(obs).distribution
        mean, log_std = experiment.policy.dist(dict(experiment.policy.named_parameters()), obs)
    torch.testing.assert_close(mean, dist.mean)
    torch.testing.assert_close(log_std.exp(), dist.stddev)
    # MAML's evaluation of the same weights: same held-out tasks, inner loop, episodes
    maml = RLExperiment(small_config())
    maml.policy.load_state_dict(experiment.policy.state_dict())
    ours, theirs = experiment.evaluate(4), maml.evaluate(4)
    maml.close()
    assert ours.steps == [0, 1]
    assert ours.mean == theirs.mean


def test_a_normalising_config_pretrains_on_standardised_observations():
    """With ``policy.normalize_obs`` SB3 trains on observations standardised with the run's
    fixed statistics, and the converted policy, which standardises raw observations itself,
    has SB3's action distribution."""
    data = baseline_config("pretrained").model_dump(mode="json")
    data["policy"]["normalize_obs"] = True
    experiment = build(RLConfig.model_validate(data))
    try:
        experiment.train_iteration(0)
        policy = experiment.policy
        assert policy.normalizes_obs
        raw = np.random.default_rng(0).normal(0.0, 0.3, size=(32, 2))
        raw[0] = policy.obs_mean.numpy() + 15 * policy.obs_std.numpy()  # beyond the clip
        standardised = experiment.train_env.normalize_obs(raw)
        expected = np.clip((raw - policy.obs_mean.numpy()) / policy.obs_std.numpy(), -10, 10)
        np.testing.assert_allclose(standardised, expected, rtol=1e-6, atol=1e-6)
        with torch.no_grad():
            theirs = experiment.model.policy.get_distribution(
                torch.as_tensor(standardised, dtype=torch.float32)
            ).distribution
            mean, log_std = policy.dist(
                dict(policy.named_parameters()), torch.as_tensor(raw, dtype=torch.float32)
            )
        torch.testing.assert_close(mean, theirs.mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(log_std.exp(), theirs.stddev)
    finally:
        experiment.close()


def test_a_run_keeps_the_process_random_state_and_repeats_with_its_seed():
    """SB3 draws from the global generators; the run swaps in its own seeded copy."""
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    runs = []
    for _ in range(2):
        experiment = build(baseline_config("pretrained"))
        experiment.train_iteration(0)
        runs.append(sb3_params(experiment))
        experiment.close()
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=0, atol=0)


def test_checkpoint_round_trip_restores_the_learner_and_its_random_state():
    experiment = build(baseline_config("pretrained"))
    experiment.train_iteration(0)
    buffer = io.BytesIO()
    torch.save(experiment.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = build(baseline_config("pretrained"))
    fresh.load_state_dict(state)
    for key, value in sb3_params(experiment).items():
        torch.testing.assert_close(sb3_params(fresh)[key], value, rtol=0, atol=0)
    for key, value in experiment.policy.state_dict().items():
        torch.testing.assert_close(fresh.policy.state_dict()[key], value, rtol=0, atol=0)
    assert fresh.model.num_timesteps == experiment.model.num_timesteps == 128
    assert fresh.env_steps == 128
    # the same private random stream continues in both
    with experiment.rng_state.active():
        a = torch.rand(3)
    with fresh.rng_state.active():
        b = torch.rand(3)
    assert torch.equal(a, b)
    experiment.close()
    fresh.close()


def test_oracle_observes_the_goal_and_is_one_point_on_the_curve():
    experiment = build(baseline_config("oracle"))
    assert experiment.model.observation_space.shape == (4,)  # position, then the goal
    experiment.train_iteration(0)
    curve = experiment.evaluate(3)
    assert curve.steps == [0] and curve.num_tasks == 3
    assert -50 * 2 < curve.mean[0] < 0  # 50 steps, each -distance (< 1.5 from the start)
    experiment.close()


def test_rl2_curve_has_one_point_per_trial_episode():
    experiment = build(baseline_config("rl2", episodes_per_trial=3, num_envs=2))
    assert experiment.model.__class__.__name__ == "RecurrentPPO"
    experiment.train_iteration(0)
    curve = experiment.evaluate(2)
    assert curve.steps == [0, 1, 2] and curve.num_tasks == 2
    assert all(-100 < m < 0 for m in curve.mean)
    experiment.close()


def test_rl2_step_rewards_start_each_trial_episode_at_its_first_step():
    """``step_rewards`` files every reward under its trial episode and its step: navigation
    restarts each episode at the origin and moves at most 0.1 per axis a step, so every
    episode's first reward is -|goal| within 0.1 * sqrt(2), consecutive rewards differ by at most
    that much, and a 50-step episode fills exactly 50 steps."""
    experiment = build(baseline_config("rl2", episodes_per_trial=2, num_envs=2))
    tasks = experiment.task_env.sample_tasks(3, np.random.default_rng(0))
    rewards = experiment.step_rewards(tasks, seed=1)
    episodes = experiment.cfg.eval.episodes_per_task
    assert rewards.shape == (3 * episodes, 2, 50)
    assert (rewards < 0).all()  # -distance at every step: no episode ended early
    goal_norm = np.repeat([np.linalg.norm(t["goal"]) for t in tasks], episodes)
    step = 0.1 * np.sqrt(2) + 1e-6
    assert (np.abs(-rewards[:, :, 0] - goal_norm[:, None]) <= step).all()
    assert (np.abs(np.diff(rewards, axis=2)) <= step).all()
    assert not np.allclose(rewards[:, 0], rewards[:, 1])  # two episodes, not one copied
    experiment.close()


def test_rl2_trains_as_sb3_contribs_own_recurrent_policy(monkeypatch):
    """RL² trains with FastRecurrentActorCriticPolicy (the LSTM over whole sequences); the same
    seed with sb3-contrib's MlpLstmPolicy takes the same steps."""
    import metarl.rl.sb3_baseline as sb3_baseline

    cfg = baseline_config(  # trials of 100 steps: one ends inside the 128-step rollout
        "rl2",
        episodes_per_trial=2,
        env_steps_per_iteration=256,
        kwargs={"n_steps": 128, "batch_size": 128},
    )
    fast = build(cfg)
    monkeypatch.setattr(sb3_baseline, "FastRecurrentActorCriticPolicy", "MlpLstmPolicy")
    reference = build(cfg)
    assert type(fast.model.policy).__name__ == "FastRecurrentActorCriticPolicy"
    assert type(reference.model.policy).__name__ == "RecurrentActorCriticPolicy"
    before = sb3_params(fast)
    fast.train_iteration(0)
    reference.train_iteration(0)
    after, expected = sb3_params(fast), sb3_params(reference)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for k in expected:
        torch.testing.assert_close(after[k], expected[k], rtol=1e-4, atol=1e-5)
    fast.close()
    reference.close()


@pytest.mark.parametrize("method", ["oracle", "rl2"])
def test_evaluation_on_the_batched_env_equals_single_wrapped_envs(method, monkeypatch):
    """The oracle's and RL²'s evaluation step every episode (trial) as one copy of the batched
    env; a family without one steps a DummyVecEnv of TaskInObservation/RL2Trial envs. Same
    policy, tasks and seed: the same returns (navigation starts every episode at the origin)."""
    import metarl.rl.sb3_baseline as sb3_baseline

    experiment = build(baseline_config(method, episodes_per_trial=2))
    experiment.train_iteration(0)
    batched = experiment.evaluate(4)
    spec = sb3_baseline.env_spec(experiment.cfg.env.id)
    no_batched = dataclasses.replace(spec, vector_entry_point=None)
    monkeypatch.setattr(sb3_baseline, "env_spec", lambda _: no_batched)
    single = experiment.evaluate(4)
    assert batched.steps == single.steps == ([0, 1] if method == "rl2" else [0])
    np.testing.assert_allclose(batched.mean, single.mean, rtol=1e-5, atol=1e-4)
    assert len(set(batched.mean)) == len(batched.mean)  # not a constant
    experiment.close()


@pytest.mark.parametrize("method", ["oracle", "rl2"])
def test_given_tasks_are_evaluated_by_the_baselines_own_model(method):
    """``metarl evaluate --task-file``: the oracle and RL² run their SB3 model on the listed
    tasks (not MAML's inner loop on an untrained metarl policy), so the split's own tasks given
    as a list evaluate exactly as drawn, and other tasks give other returns."""
    experiment = build(baseline_config(method, episodes_per_trial=2))
    experiment.train_iteration(0)
    drawn = experiment.evaluate(4)
    given = experiment.evaluate_on(drawn.tasks)
    assert experiment.eval_tasks(4, "test")[0] == drawn.tasks  # what the RL² script reads
    assert given.steps == drawn.steps == ([0, 1] if method == "rl2" else [0])
    np.testing.assert_array_equal(given.mean, drawn.mean)
    other = experiment.evaluate_on([{"goal": [0.4, -0.3]}] * 4)
    assert other.mean != drawn.mean
    experiment.close()


def test_env_steps_per_iteration_must_be_whole_rollouts():
    with pytest.raises(ValueError, match=r"multiple of one rollout, n_steps x num_envs = 64 x 2"):
        build(baseline_config("pretrained", env_steps_per_iteration=100))


def test_keys_metarl_sets_are_refused_in_kwargs():
    with pytest.raises(ValueError, match=r"algo.kwargs \['seed'\] are set by metarl"):
        baseline_config("pretrained", kwargs={"seed": 1})
