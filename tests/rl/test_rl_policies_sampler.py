import gymnasium
import numpy as np
import pytest
import torch
from rl_testing import NAV, nav_tasks

from metarl.core import stack_params
from metarl.rl.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from metarl.rl.sampling.actions import ActionMap
from metarl.rl.sampling.backends import resolve_backend
from metarl.rl.sampling.sampler import Sampler


def _perturbed(policy, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return stack_params(
        [
            {
                k: v.detach() + 0.1 * torch.randn(v.shape, generator=g)
                for k, v in policy.named_parameters()
            }
            for _ in range(n)
        ]
    )


@pytest.mark.parametrize("cls,out", [(GaussianMLPPolicy, 3), (CategoricalMLPPolicy, 4)])
def test_stacked_params_equal_per_task_calls(cls, out):
    policy = cls(5, out, (8, 8), "relu", generator=torch.Generator().manual_seed(0))
    stacked = _perturbed(policy, 3)
    obs = torch.randn(3, 4, 6, 5)
    batched = policy.dist(stacked, obs)
    for i in range(3):
        single = policy.dist({k: v[i] for k, v in stacked.items()}, obs[i])
        for a, b in zip(batched, single):
            torch.testing.assert_close(a[i], b)


def test_gaussian_log_prob_and_kl_match_torch_distributions():
    policy = GaussianMLPPolicy(3, 2, (8,), generator=torch.Generator().manual_seed(0))
    obs, act = torch.randn(10, 3), torch.randn(10, 2)
    mean, log_std = policy.dist(dict(policy.named_parameters()), obs)
    ref = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(policy.log_prob((mean, log_std), act), ref.log_prob(act).sum(-1))
    other = (mean + 0.3, log_std - 0.2)
    ref2 = torch.distributions.Normal(other[0], other[1].exp())
    kl = torch.distributions.kl_divergence(ref, ref2).sum(-1)
    torch.testing.assert_close(policy.kl((mean, log_std), other), kl)


def test_batched_and_vector_backends_give_same_returns(small_policy):
    tasks = nav_tasks(3)
    params = _perturbed(small_policy, 3)
    out = {}
    for backend in ("batched", "vector"):
        sampler = Sampler(NAV, small_policy, backend=backend, rng=np.random.default_rng(5))
        out[backend] = sampler.sample(params, tasks, 4)
        sampler.close()
    a, b = out["batched"], out["vector"]
    assert a.obs.shape == (3, 4, 100, 2) and a.mask.shape == (3, 4, 100)
    torch.testing.assert_close(a.returns, b.returns, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(a.obs, b.obs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.actions, b.actions)


def test_same_seed_same_trajectories(small_policy):
    tasks = nav_tasks(2)
    params = dict(small_policy.named_parameters())
    runs = []
    for _ in range(2):
        sampler = Sampler(NAV, small_policy, rng=np.random.default_rng(3))
        runs.append([sampler.sample(params, tasks, 3) for _ in range(2)])
    for first, second in zip(*runs):
        assert torch.equal(first.obs, second.obs) and torch.equal(first.rewards, second.rewards)
    assert not torch.equal(runs[0][0].actions, runs[0][1].actions)  # the stream advances


def test_mask_after_termination_and_thread_restore(small_policy):
    threads = torch.get_num_threads()
    # a huge goal radius makes every episode terminate on its first step
    sampler = Sampler(
        NAV, small_policy, env_kwargs={"goal_radius": 5.0}, rng=np.random.default_rng(0)
    )
    traj = sampler.sample(dict(small_policy.named_parameters()), nav_tasks(2), 3)
    assert torch.equal(traj.lengths, torch.ones(2, 3, dtype=torch.long))
    assert float(traj.mask[..., 1:].sum()) == 0.0 and float(traj.rewards[..., 1:].abs().sum()) == 0
    torch.testing.assert_close(traj.returns, traj.rewards[..., 0])
    assert torch.get_num_threads() == threads
    sampler.close()


def test_unknown_env_and_backend_errors(small_policy):
    with pytest.raises(ValueError, match="registered metarl ids"):
        resolve_backend("metarl/Nope-v0", "auto")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend(NAV, "gpu")
    assert resolve_backend(NAV, "auto") == "batched"
    gymnasium.make(NAV)  # registered by importing envs


def test_categorical_policy_samples_discrete_env_with_masks():
    env_id = "metarl/CartPoleDynamics-v0"
    env = gymnasium.make(env_id)
    policy = CategoricalMLPPolicy(4, 2, (8,), "tanh", torch.Generator().manual_seed(0))
    sampler = Sampler(env_id, policy, rng=np.random.default_rng(0))
    tasks = env.unwrapped.sample_tasks(2, np.random.default_rng(0))
    traj = sampler.sample(dict(policy.named_parameters()), tasks, 3)
    sampler.close()
    # every random episode falls long before the horizon (500): the batch ends at the longest
    longest = int(traj.lengths.max())
    assert longest < 500
    assert traj.actions.dtype == torch.int64 and traj.actions.shape == (2, 3, longest)
    assert set(traj.actions.unique().tolist()) <= {0, 1}
    torch.testing.assert_close(traj.returns, traj.lengths.float())  # +1 per step until the fall
    steps = torch.arange(longest)
    torch.testing.assert_close(traj.mask, (steps < traj.lengths.unsqueeze(-1)).float())


@pytest.mark.parametrize("rescale, scale", [(False, 1.0), (True, 1.0), (False, 10.0)])
def test_action_map_gives_the_env_the_mapped_clipped_action(small_policy, rescale, scale):
    """Navigation2D moves by the action the env receives: clip(a) without rescaling,
    clip(low + (a + 1) / 2 * (high - low)) = clip(0.1 * a) with it (rllab's NormalizedEnv, which
    the MAML code wrapped the point env in), and clip(a / 10) with action_scale 10 (ProMP's
    normalization_scale). The recorded action stays the policy's own."""
    sampler = Sampler(
        NAV,
        small_policy,
        backend="batched",
        rng=np.random.default_rng(0),
        action_map=ActionMap(rescale=rescale, scale=scale),
    )
    try:
        trajs = sampler.sample(dict(small_policy.named_parameters()), nav_tasks(2), 3)
    finally:
        sampler.close()
    obs, actions, mask = trajs.obs, trajs.actions, trajs.mask
    both = (mask[..., :-1] * mask[..., 1:]).bool()  # consecutive steps inside an episode
    moved = (obs[..., 1:, :] - obs[..., :-1, :])[both]
    factor = (0.1 if rescale else 1.0) / scale
    sent = (factor * actions)[..., :-1, :][both].clamp(-0.1, 0.1)
    torch.testing.assert_close(moved, sent.to(moved.dtype), atol=1e-5, rtol=1e-4)
    # with std 1 against a 0.1 box, unscaled actions are almost all clipped; scaled ones are not
    clipped = ((factor * actions).abs() >= 0.1).float().mean()
    assert (clipped < 0.5) if factor < 1 else (clipped > 0.8)


def test_sampling_threads_follow_the_wait_policy(small_policy, monkeypatch):
    """Unset: the process's torch threads where idle threads sleep, else 1 (spinning threads
    starve MuJoCo's); an explicit count always wins."""
    sampler = Sampler(NAV, small_policy, rng=np.random.default_rng(0))
    explicit = Sampler(NAV, small_policy, num_threads=3, rng=np.random.default_rng(0))
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert sampler.sampling_threads() == torch.get_num_threads()
    assert explicit.sampling_threads() == 3
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert sampler.sampling_threads() == 1
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert sampler.sampling_threads() == 1 and explicit.sampling_threads() == 3
    sampler.close()
    explicit.close()
