"""Does CartPole with per-task physics need adaptation? One fixed controller on many variants.

Runs the hand-written bang-bang controller ``push right iff theta + k * theta_dot (+ small cart
terms) > 0`` (no learning, the same for every variant) on variants drawn from the ranges of
``metarl/CartPoleDynamics-v0``, which its config keeps (gravity U[4.9, 14.7], cart mass
U[0.5, 2], pole mass U[0.05, 0.2], half-length U[0.25, 1]), from ranges 2-5x wider, and from
the env's ranges with the motor reversed (``motor_gain`` -1) on half the variants
(``cartpole_motor.yaml``), and prints the mean return (500 is the cap) and the share of
episodes that drop the pole. If one controller balances nearly every variant, a meta-learned
policy can reach the cap without adapting, and a gradient step has nothing to gain within those
ranges; if it drops about half, a controller of this kind cannot do without knowing the
motor's polarity (a learned policy may still infer it within an episode from how the cart
responds to its pushes).

    python scripts/investigations/cartpole_fixed_controller.py [--variants 200] [--seed 0]
"""

from __future__ import annotations

import argparse

import gymnasium
import numpy as np

import envs  # noqa: F401  (registers metarl/ ids)

RANGES = {
    "the env's own (cartpole_dynamics.yaml)": None,
    "wider": {
        "gravity": [4.9, 29.4],
        "masscart": [0.5, 5.0],
        "masspole": [0.05, 0.5],
        "length": [0.1, 2.0],
    },
    "the env's own, motor reversed on half (cartpole_motor.yaml)": {"motor_gain": [-1, 1]},
}


def episode(env, k: float, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(500):
        x, x_dot, th, th_dot = obs
        action = int(th + k * th_dot + 0.05 * x_dot + 0.01 * x > 0)
        obs, r, terminated, truncated, _ = env.step(action)
        total += r
        if terminated or truncated:
            break
    return total


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print("ranges | theta_dot gain k | mean return (cap 500) | share of episodes dropped")
    for name, ranges in RANGES.items():
        kwargs = {} if ranges is None else {"task_range": ranges}
        env = gymnasium.make("metarl/CartPoleDynamics-v0", **kwargs).unwrapped
        tasks = env.sample_tasks(args.variants, np.random.default_rng(args.seed))
        for k in (0.2, 0.5, 1.0):
            returns = []
            for i, task in enumerate(tasks):
                env.set_task(task)
                returns.append(episode(env, k, seed=args.seed * 100_000 + i))
            r = np.asarray(returns)
            print(f"{name} | {k} | {r.mean():.1f} | {(r < 500).mean():.3f}")


if __name__ == "__main__":
    main()
