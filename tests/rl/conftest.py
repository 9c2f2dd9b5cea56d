"""Shared fixtures for the meta-RL tests (small policies, Navigation2D)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rl_testing import NAV

from metarl.core import InnerSpec
from metarl.rl.inner_loop import InnerLoop
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampling.sampler import Sampler


@pytest.fixture
def small_policy() -> GaussianMLPPolicy:
    return GaussianMLPPolicy(2, 2, (16, 16), "tanh", 0.0, torch.Generator().manual_seed(0))


@pytest.fixture
def nav_sampler(small_policy) -> Sampler:
    sampler = Sampler(NAV, small_policy, backend="batched", rng=np.random.default_rng(0))
    yield sampler
    sampler.close()


@pytest.fixture
def inner(small_policy) -> InnerLoop:
    return InnerLoop(small_policy, InnerSpec(0.1))
