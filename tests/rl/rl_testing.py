"""Helpers shared by the meta-RL tests (imported as a plain module)."""

from __future__ import annotations

import os
import time

import numpy as np

from envs.navigation import Navigation2DEnv

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


SLOW_NAV = "metarl-test/SlowNavigation2D-v0"


class SlowNavigation2D(Navigation2DEnv):
    """Navigation2D whose steps sleep ``delay`` seconds (to catch a worker mid-phase); with
    ``mark``, every reset appends the process id to that file (the phase has begun)."""

    def __init__(self, delay: float = 0.01, mark: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.delay = float(delay)
        self.mark = mark

    def reset(self, *, seed=None, options=None):
        if self.mark is not None:
            with open(self.mark, "a") as f:
                f.write(f"{os.getpid()}\n")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        time.sleep(self.delay)
        return super().step(action)


def register_slow_nav() -> str:
    """Register :data:`SLOW_NAV`, which has no vector entry point (worker processes step it in
    a ``SyncVectorEnv``). Workers re-register it from its spec: the entry point is importable
    there, as spawned processes get this process's ``sys.path``."""
    import gymnasium

    if SLOW_NAV not in gymnasium.registry:
        gymnasium.register(
            SLOW_NAV, entry_point="rl_testing:SlowNavigation2D", max_episode_steps=100
        )
    return SLOW_NAV
