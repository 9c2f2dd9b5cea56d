"""The ray sampler backend against the process backend (starts a local Ray runtime, ~3-5 s)."""

import numpy as np
import pytest
import torch
from rl_testing import NAV, nav_tasks

from metarl.core import stack_params
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampling.sampler import Sampler

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'metarl[ray]'")


@pytest.mark.ray
def test_ray_actors_give_the_process_backends_trajectories():
    """Same worker class, worker count, split and derived seeds: identical trajectories."""
    policy = GaussianMLPPolicy(2, 2, (16, 16), "tanh", 0.0, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    tasks = nav_tasks(4)
    params = stack_params(
        [
            {
                k: v.detach() + 0.1 * torch.randn(v.shape, generator=g)
                for k, v in policy.named_parameters()
            }
            for _ in tasks
        ]
    )
    assert not ray.is_initialized()
    ray_sampler = Sampler(NAV, policy, backend="ray", num_workers=2)
    try:
        assert ray.is_initialized() and ray_sampler.num_workers == 2
        assert ray_sampler.describe().startswith("sampler: ray, 2 workers (")
        from_ray = ray_sampler.sample(params, tasks, 5, np.random.default_rng(4))
        with pytest.raises(RuntimeError, match=r"sampler worker 1 \(Ray actor\) raised ValueError"):
            ray_sampler.sample(params, [*tasks[:3], {"goal": [99.0, 0.0]}], 1)
    finally:
        ray_sampler.close()
        ray.shutdown()
    assert not ray.is_initialized()
    with Sampler(NAV, policy, backend="process", num_workers=2) as process_sampler:
        from_process = process_sampler.sample(params, tasks, 5, np.random.default_rng(4))
    assert from_ray.returns.shape == from_process.returns.shape == (4, 5)
    for field in ("obs", "actions", "rewards", "mask", "returns", "lengths"):
        assert torch.equal(getattr(from_ray, field), getattr(from_process, field)), field
