"""Shared fixtures for the meta-RL tests (small policies, Navigation2D)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# Under plain `pytest`, tests/ is on sys.path and the tests/envs folder (no __init__.py) would
# shadow the real `envs` package as a namespace package: put the repository root first.
_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
if "envs" in sys.modules and getattr(sys.modules["envs"], "__file__", None) is None:
    for _name in [m for m in sys.modules if m == "envs" or m.startswith("envs.")]:
        del sys.modules[_name]

envs = pytest.importorskip("envs")

from rl_testing import NAV  # noqa: E402

from metarl.rl.inner_loop import InnerLoop  # noqa: E402
from metarl.rl.policies import GaussianMLPPolicy  # noqa: E402
from metarl.rl.sampler import Sampler  # noqa: E402


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
    return InnerLoop(small_policy, inner_lr=0.1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """CI has 2 busy cores: torch's second thread only busy-waits against the other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
