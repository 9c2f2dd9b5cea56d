"""``sampler.budget: steps``: each task's batch is whole episodes up to episodes x horizon steps."""

import json

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError
from rl_testing import NAV, nav_tasks, small_config

from metarl.cli import main
from metarl.rl import RLConfig
from metarl.rl.experiment import RLExperiment
from metarl.rl.sampling.sampler import Sampler
from metarl.rl.sampling.step_budget import fill_to_steps
from metarl.rl.trajectories import Trajectories

# within 0.2 of the goal an episode ends: a random policy ends some at once, runs others to 100
EARLY_END = {"goal_radius": 0.2}


def _arrays(lengths: list[list[int]], horizon: int, first_id: int) -> dict[str, np.ndarray]:
    """Episodes of the given lengths whose every observation is the episode's id."""
    n_tasks, n_eps = len(lengths), len(lengths[0])
    ids = first_id + np.arange(n_tasks * n_eps, dtype=np.float32).reshape(n_tasks, n_eps)
    steps = np.arange(horizon)
    mask = (steps < np.asarray(lengths)[..., None]).astype(np.float32)
    return {
        "obs": (ids[..., None] * mask)[..., None],
        "rewards": mask.copy(),
        "mask": mask,
    }


def test_fill_keeps_each_tasks_shortest_prefix_reaching_the_budget_and_pads():
    calls = []

    def run(task_indices, episodes):
        calls.append((list(task_indices), episodes))
        return _arrays([[2, 4]], horizon=5, first_id=100)

    first = _arrays([[5, 5], [1, 2]], horizon=5, first_id=0)
    out = fill_to_steps(first, 6, run, [{"goal": 0}, {"goal": 1}])
    # task 1 has 3 of 6 steps at 1.5 per episode: two more episodes, run for task 1 only
    assert calls == [([1], 2)]
    lengths = out["mask"].sum(-1)
    # task 0: 5 + 5 reaches 6 with both; task 1: 1 + 2 + 2 + 4 reaches 6 at its fourth
    np.testing.assert_array_equal(lengths, [[5, 5, 0, 0], [1, 2, 2, 4]])
    episode_ids = out["obs"][..., 0, 0]  # each episode's first observation is its id
    np.testing.assert_array_equal(episode_ids, [[0, 1, 0, 0], [2, 3, 100, 101]])
    assert out["rewards"].sum() == 5 + 5 + 1 + 2 + 2 + 4


def test_fill_drops_episodes_past_the_one_that_reaches_the_budget():
    def run(task_indices, episodes):
        assert (list(task_indices), episodes) == ([0], 3)  # 5 steps short at 2 per episode
        return _arrays([[3, 3, 3]], horizon=4, first_id=10)

    out = fill_to_steps(_arrays([[2]], horizon=4, first_id=0), 7, run, [{"goal": 0}])
    np.testing.assert_array_equal(out["mask"].sum(-1), [[2, 3, 3]])  # 2 + 3 + 3 >= 7


def test_a_task_whose_episodes_take_no_step_is_an_error_naming_it():
    def run(task_indices, episodes):
        return _arrays([[0] * episodes], horizon=3, first_id=0)

    with pytest.raises(RuntimeError, match=r"task 0 \(\{'velocity': 9\.0\}\) took no env step"):
        fill_to_steps(_arrays([[0]], horizon=3, first_id=0), 5, run, [{"velocity": 9.0}])


@pytest.mark.parametrize("backend", ["batched", "process"])
def test_sampled_batches_hold_whole_episodes_up_to_the_budget(small_policy, backend):
    workers = {"num_workers": 2} if backend == "process" else {}
    tasks = nav_tasks(3)
    params = dict(small_policy.named_parameters())
    batches = []
    for _ in range(2):
        with Sampler(
            NAV,
            small_policy,
            env_kwargs=EARLY_END,
            backend=backend,
            rng=np.random.default_rng(1),
            budget="steps",
            **workers,
        ) as sampler:
            batches.append(sampler.sample(params, tasks, 4))
    traj = batches[0]
    budget = 4 * 100
    for row in traj.lengths.tolist():
        kept = [n for n in row if n > 0]
        assert row == kept + [0] * (len(row) - len(kept))  # the padding comes last
        assert sum(kept) >= budget and sum(kept) - kept[-1] < budget
    assert traj.lengths.shape[1] > 4  # episodes ended early, so some task needed more
    assert int(traj.lengths.min()) == 0 < int(traj.lengths.max())
    torch.testing.assert_close(traj.mask.sum(-1).long(), traj.lengths)
    assert float((traj.rewards * (1 - traj.mask)).abs().sum()) == 0.0
    assert torch.equal(traj.obs, batches[1].obs)  # the same seed, the same batch


def test_without_early_ends_the_steps_budget_is_the_episodes_batch(small_policy):
    tasks = nav_tasks(3)
    params = dict(small_policy.named_parameters())
    out = {}
    for budget in ("episodes", "steps"):
        with Sampler(NAV, small_policy, rng=np.random.default_rng(2), budget=budget) as sampler:
            out[budget] = sampler.sample(params, tasks, 4)
    assert int(out["episodes"].lengths.min()) == 100  # nothing ended early
    for name in ("obs", "actions", "rewards", "mask"):
        assert torch.equal(getattr(out["episodes"], name), getattr(out["steps"], name))


def test_means_over_episodes_skip_the_padding():
    rewards = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], [[4.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    traj = Trajectories(
        obs=torch.zeros(2, 2, 3, 1),
        actions=torch.zeros(2, 2, 3, 1),
        rewards=rewards,
        mask=mask,
        returns=rewards.sum(-1),
        lengths=mask.sum(-1).long(),
    )
    # task 0 has one episode (return 6), task 1 two (4 and 5)
    torch.testing.assert_close(traj.task_returns(), torch.tensor([6.0, 4.5]))
    assert traj.mean_return() == pytest.approx((6.0 + 4.0 + 5.0) / 3)


def test_the_config_takes_episodes_or_steps_only():
    data = small_config().model_dump()
    data["sampler"]["budget"] = "samples"
    with pytest.raises(ValidationError, match="budget"):
        RLConfig.model_validate(data)


def test_a_training_iteration_samples_the_step_budget_in_each_phase():
    cfg = small_config(iterations=1)
    data = cfg.model_dump()
    data["env"]["kwargs"] = EARLY_END
    data["sampler"]["budget"] = "steps"
    cfg = RLConfig.model_validate(data)
    experiment = RLExperiment(cfg)
    try:
        metrics = experiment.train_iteration(0)
    finally:
        experiment.close()
    # 8 tasks x (8 episodes x 50 steps) at least, before and after the inner step
    assert metrics["train/env_steps"] >= 2 * 8 * 8 * 50
    assert np.isfinite(metrics["train/return_before"]) and np.isfinite(metrics["train/kl"])


def test_evaluate_may_change_the_budget_but_not_the_action_mapping(tmp_path, capsys):
    data = small_config(iterations=1).model_dump(mode="json")
    data["env"]["kwargs"] = EARLY_END
    config = tmp_path / "nav.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run), "--eval-tasks", "4"]) == 0
    assert main(["evaluate", str(run), "--tasks", "4", "--set", "sampler.budget=steps"]) == 0
    saved = json.loads((run / "evaluations" / "test-4tasks-sampler.budget=steps.json").read_text())
    assert saved["overrides"] == ["sampler.budget=steps"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--set", "sampler.action_scale=10"]) == 2
    assert "sampler.budget" in capsys.readouterr().err
