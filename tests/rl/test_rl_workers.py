"""The process sampler backend: worker processes, the rectangular split, failures, auto choice."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from rl_testing import NAV, SLOW_NAV, nav_tasks, register_slow_nav

from metarl.core import stack_params
from metarl.faults import EnvironmentFault
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampling import backends
from metarl.rl.sampling.rollout import join_arrays
from metarl.rl.sampling.sampler import Sampler
from metarl.rl.sampling.workers import split_slots


def _policy() -> GaussianMLPPolicy:
    return GaussianMLPPolicy(2, 2, (16, 16), "tanh", 0.0, torch.Generator().manual_seed(0))


def _per_task(policy, n, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    base = {k: v.detach() for k, v in policy.named_parameters()}
    return stack_params(
        [
            {k: v + scale * torch.randn(v.shape, generator=g) for k, v in base.items()}
            for _ in range(n)
        ]
    )


@pytest.fixture(scope="module")
def process_sampler():
    """One two-worker process sampler shared by this module (workers start once, ~3 s)."""
    sampler = Sampler(NAV, _policy(), backend="process", num_workers=2)
    yield sampler
    sampler.close()


def _same(a, b) -> bool:
    return all(
        torch.equal(getattr(a, f), getattr(b, f)) for f in ("obs", "actions", "rewards", "mask")
    )


@pytest.mark.parametrize("num_tasks,episodes", [(3, 4), (1, 5), (5, 1)])
def test_process_shapes_masks_and_same_seed_same_trajectories(process_sampler, num_tasks, episodes):
    """(3, 4) splits tasks between the workers, (1, 5) splits episodes, (5, 1) splits tasks
    again (fewer episodes than tasks)."""
    policy = process_sampler.policy
    params = _per_task(policy, num_tasks)
    tasks = nav_tasks(num_tasks)
    first = process_sampler.sample(params, tasks, episodes, np.random.default_rng(11))
    again = process_sampler.sample(params, tasks, episodes, np.random.default_rng(11))
    other = process_sampler.sample(params, tasks, episodes, np.random.default_rng(12))
    assert first.obs.shape == (num_tasks, episodes, 100, 2)
    assert first.actions.shape == (num_tasks, episodes, 100, 2)
    assert first.mask.shape == first.rewards.shape == (num_tasks, episodes, 100)
    assert first.returns.shape == first.lengths.shape == (num_tasks, episodes)
    steps = torch.arange(100)
    torch.testing.assert_close(first.mask, (steps < first.lengths.unsqueeze(-1)).float())
    torch.testing.assert_close(first.returns, first.rewards.sum(-1))
    assert float(first.rewards[first.mask == 0].abs().sum()) == 0.0
    assert _same(first, again)
    assert not torch.equal(first.actions, other.actions)
    # the episodes of a task start at the origin and move towards that task's own goal
    assert float(first.obs[:, :, 0].abs().max()) == 0.0


def test_process_trajectories_follow_each_task_and_its_parameters(process_sampler):
    """Each task's rows of stacked parameters drive that task's episodes: a policy whose mean
    action is a per-task constant moves each task's point along that task's direction."""
    policy = process_sampler.policy
    tasks = nav_tasks(3)
    params = {k: torch.zeros((3, *v.shape)) for k, v in policy.named_parameters()}
    direction = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    params["layers.2.bias"] = direction
    params["log_std"] = torch.full((3, 2), -20.0)  # deterministic
    traj = process_sampler.sample(params, tasks, 2, np.random.default_rng(0))
    moved = traj.obs[:, :, 1] - traj.obs[:, :, 0]  # the first step, clipped to the 0.1 box
    torch.testing.assert_close(moved, (0.1 * direction).unsqueeze(1).expand(3, 2, 2))


def test_process_returns_match_batched_backend(process_sampler):
    """Different noise streams, the same distribution: per-task mean returns agree within a few
    standard errors, as does the overall mean."""
    policy = process_sampler.policy
    num_tasks, episodes = 6, 48
    tasks, params = nav_tasks(num_tasks, seed=3), _per_task(policy, num_tasks, seed=3)
    proc = process_sampler.sample(params, tasks, episodes, np.random.default_rng(1))
    with Sampler(NAV, policy, backend="batched", rng=np.random.default_rng(2)) as batched:
        ref = batched.sample(params, tasks, episodes)
    a, b = proc.returns.double(), ref.returns.double()
    se = torch.sqrt(a.var(1) / episodes + b.var(1) / episodes)
    z = (a.mean(1) - b.mean(1)) / se
    assert float(z.abs().max()) < 4.0, z
    overall = (a.mean() - b.mean()) / torch.sqrt(a.var() / a.numel() + b.var() / b.numel())
    assert abs(float(overall)) < 4.0
    assert proc.env_steps > num_tasks * episodes * 50  # few episodes end early


def test_worker_exception_names_worker_and_task_and_pool_stays_usable(process_sampler):
    pids = list(process_sampler._pool.pids)
    tasks = [*nav_tasks(1), {"goal": "far away"}]
    params = dict(process_sampler.policy.named_parameters())
    with pytest.raises(RuntimeError) as info:
        process_sampler.sample(params, tasks, 2)
    text = str(info.value)
    assert f"sampler worker 1 (pid {pids[1]}) raised ValueError" in text
    assert "task 1 of 2" in text and "far away" in text and "must be a list" in text
    assert isinstance(info.value.__cause__, ValueError)
    traj = process_sampler.sample(params, nav_tasks(2), 2)  # the same workers go on
    assert traj.obs.shape == (2, 2, 100, 2) and process_sampler._pool.pids == pids


def _kill_when_marked(mark, pid: int) -> threading.Thread:
    """SIGKILL ``pid`` as soon as it writes its id to ``mark`` (its envs reset: mid-phase)."""

    def watch():
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            if mark.exists() and str(pid) in mark.read_text().split():
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_killed_or_stuck_worker_raises_naming_it_without_hanging_and_restarts(tmp_path):
    register_slow_nav()
    policy = _policy()
    mark = tmp_path / "phase_started"
    sampler = Sampler(
        SLOW_NAV,
        policy,
        env_kwargs={"delay": 0.01, "mark": str(mark)},
        backend="process",
        num_workers=2,
        horizon=60,
    )
    try:
        params = dict(policy.named_parameters())
        tasks = nav_tasks(4)
        sampler.sample(params, tasks, 1)  # workers up, envs built (>= 0.6 s of stepping)
        victim = sampler._pool.pids[0]
        mark.unlink()
        killer = _kill_when_marked(mark, victim)  # killed after its phase began, before its end
        start = time.monotonic()
        with pytest.raises(EnvironmentFault) as info:  # the CLI's exit code 3
            sampler.sample(params, tasks, 1)
        killer.join()
        assert time.monotonic() - start < 10.0
        text = str(info.value)
        assert f"sampler worker 0 (pid {victim}) died (killed by SIGKILL)" in text
        assert "tasks 0-1 of 4" in text and "start again on the next sample() call" in text
        assert sampler._pool.pids == []  # the other worker was shut down too
        traj = sampler.sample(params, tasks[:2], 1)  # fresh workers
        assert traj.obs.shape == (2, 1, 60, 2) and victim not in sampler._pool.pids
        # a stuck phase (here: merely slow, >= 60 sleeps of 10 ms) fails the same way
        sampler._pool.timeout_s = 0.2
        with pytest.raises(EnvironmentFault, match=r"did not finish within timeout_s=0.2 s"):
            sampler.sample(params, tasks, 1)
        assert sampler._pool.pids == []
    finally:
        sampler.close()
    assert sampler._pool.pids == []


def test_split_slots_is_rectangular_and_uses_at_most_the_slots():
    parts, axis = split_slots(5, 3, 2)
    assert axis == 0 and [(p.task_start, p.task_stop, p.episodes) for p in parts] == [
        (0, 3, 3),
        (3, 5, 3),
    ]
    parts, axis = split_slots(2, 7, 4)  # fewer tasks than workers: split the episodes
    assert axis == 1 and [(p.episode_start, p.episode_stop) for p in parts] == [
        (0, 2),
        (2, 4),
        (4, 6),
        (6, 7),
    ]
    assert all((p.task_start, p.task_stop) == (0, 2) for p in parts)
    assert len(split_slots(1, 1, 8)[0]) == 1
    assert len(split_slots(3, 2, 8)[0]) == 3  # more tasks than episodes: one worker per task


def test_auto_backend_choice_follows_the_machine_and_the_env(monkeypatch):
    register_slow_nav()
    monkeypatch.setattr(backends, "available_cores", lambda: 2)
    plan = backends.plan_sampler(NAV, "auto")
    assert (plan.backend, plan.num_workers) == ("batched", None)
    assert plan.describe() == "sampler: batched (Navigation2D has a native batched env; 2 cores)"
    plan = backends.plan_sampler(SLOW_NAV, "auto")
    assert (plan.backend, plan.num_workers) == ("process", 2)
    assert plan.describe().startswith("sampler: process, 2 workers (SlowNavigation2D has no")
    monkeypatch.setattr(backends, "available_cores", lambda: 1)
    assert backends.plan_sampler(SLOW_NAV, "auto").backend == "vector"
    assert backends.plan_sampler(NAV, "process").num_workers == 1
    with pytest.raises(ValueError, match="no vector_entry_point"):
        backends.plan_sampler(SLOW_NAV, "batched")


def test_join_pads_shorter_parts_in_time_with_zeros():
    """Each part ends at its own longest episode; the joined batch ends at the longest of all,
    the shorter part's steps kept and the added steps zero (mask 0: outside every episode)."""
    rng = np.random.default_rng(0)

    def part(tasks: int, steps: int) -> dict[str, np.ndarray]:
        return {
            "obs": rng.normal(size=(tasks, 2, steps, 3)).astype(np.float32),
            "actions": rng.integers(0, 2, size=(tasks, 2, steps)),
            "mask": np.ones((tasks, 2, steps), dtype=np.float32),
        }

    short, long = part(1, 3), part(2, 5)
    joined = join_arrays([short, long], axis=0)
    assert joined["obs"].shape == (3, 2, 5, 3) and joined["actions"].shape == (3, 2, 5)
    for key in short:
        np.testing.assert_array_equal(joined[key][:1, :, :3], short[key])
        np.testing.assert_array_equal(joined[key][1:], long[key])
        assert not joined[key][:1, :, 3:].any()
    assert joined["actions"].dtype == long["actions"].dtype
