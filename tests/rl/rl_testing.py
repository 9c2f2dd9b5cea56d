"""Helpers shared by the meta-RL tests (imported as a plain module)."""

from __future__ import annotations

import numpy as np

NAV = "metarl/Navigation2D-v0"


def nav_tasks(n: int, seed: int = 0) -> list[dict]:
    import gymnasium

    import envs  # noqa: F401

    return gymnasium.make(NAV).unwrapped.sample_tasks(n, np.random.default_rng(seed))


def small_config(algo: str = "maml_trpo", iterations: int = 5, **algo_kwargs):
    """A CI-sized Navigation2D config (small policy, 8 tasks x 8 episodes, horizon 50)."""
    from metarl.rl import RLConfig

    return RLConfig.model_validate(
        {
            "seed": 0,
            "train": {"iterations": iterations},
            "env": {"id": NAV, "horizon": 50},
            "policy": {"hidden_sizes": [32, 32], "activation": "tanh"},
            "algo": {"name": algo, "meta_batch_size": 8, "episodes_per_task": 8, **algo_kwargs},
            "eval": {"tasks": 10, "steps": 1, "episodes_per_task": 8},
        }
    )
