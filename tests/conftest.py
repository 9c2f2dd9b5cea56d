"""Suite-wide settings: torch on one intra-op thread, and torch's global RNG reseeded per test.

The models in the tests are tiny; with two threads torch's idle workers busy-wait and slow down
everything else on a 2-core CI machine (MuJoCo's thread pool included).

The library itself never draws from torch's global RNG (it takes seeded generators); some tests
make their random inputs with ``torch.randn``. Reseeding before each test makes those inputs the
same on every run and in any test order, so a failure can be reproduced.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch_global_rng():
    torch.manual_seed(0)
