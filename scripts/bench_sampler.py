"""Closed-loop sampling throughput (env steps per second) of every sampler backend, against a
hand-written Gymnasium ``SyncVectorEnv`` loop and the physics ceiling.

One meta-batch: ``--tasks`` tasks x ``--episodes`` episodes x ``--horizon`` steps of
HalfCheetahVel with a (100, 100) ReLU Gaussian MLP and per-task adapted parameters (the policy's
parameters stacked per task with small random perturbations), as MAML-TRPO samples after its inner
step. Measured in one run, in interleaved repeats (every backend once per repeat), medians
reported:

* ``batched``, ``vector``, ``process``, ``ray`` (when importable): :class:`metarl.rl.Sampler`;
* ``sync_vector``: what a user writes by hand: ``gymnasium.vector.SyncVectorEnv`` of
  ``gymnasium.make`` copies, ``set_task`` per copy, a loop of ``step`` with one batched torch
  policy call per step;
* ``ceiling``: ``mujoco.batch`` alone with the same copies and threads, replaying open-loop the
  actions a sampler run executed (a policy's actions, not uniform random ones, which cost ~24%
  more physics). Every sampler run is followed at once by the replay of its own actions, and its
  ``ratio_to_ceiling`` is the median of these paired ratios, so a load that changes between
  runs (other jobs on the machine) moves both sides of a ratio alike.

The time of the batched backend is split into physics (its paired ceiling's time), policy (the
same policy calls on the recorded observations) and the rest (env bookkeeping, buffers). torch
runs on one thread everywhere (more torch threads busy-wait and starve MuJoCo's).

``--env-kwargs`` passes keyword arguments to every env (for HalfCheetah, ``'{"frame_skip": 5}'``
gives Gymnasium v5's timing, five physics steps per env step; the task envs default to the MAML
code's one).

    python scripts/bench_sampler.py --json
    python scripts/bench_sampler.py --env-kwargs '{"frame_skip": 5}' --json
    python scripts/bench_sampler.py --tasks 4 --episodes 5 --horizon 50 --repeats 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import bench_ceiling  # noqa: E402

import envs  # noqa: E402,F401  (registers the metarl ids)
from metarl.core import stack_params  # noqa: E402
from metarl.rl.policies import GaussianMLPPolicy  # noqa: E402
from metarl.rl.sampling.sampler import Sampler  # noqa: E402

SAMPLER_BACKENDS = ("batched", "vector", "process", "ray")
ALL = (*SAMPLER_BACKENDS, "sync_vector")


def ray_importable() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def adapted_params(policy: GaussianMLPPolicy, tasks: int, seed: int = 0) -> dict:
    """The policy's parameters stacked per task, each perturbed by 1% noise."""
    g = torch.Generator().manual_seed(seed)
    base = {k: v.detach() for k, v in policy.named_parameters()}
    return stack_params(
        [
            {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
            for _ in range(tasks)
        ]
    )


class HandWrittenSyncVector:
    """The loop a user writes: SyncVectorEnv of gymnasium.make copies, one policy call a step."""

    def __init__(
        self, env_id: str, policy, tasks: list[dict], episodes: int, horizon: int, kwargs: dict
    ):
        self.policy, self.tasks, self.episodes, self.horizon = policy, tasks, episodes, horizon
        n = len(tasks) * episodes
        self.venv = gymnasium.vector.SyncVectorEnv(
            [lambda: gymnasium.make(env_id, max_episode_steps=horizon, **kwargs)] * n
        )
        for i, env in enumerate(self.venv.envs):
            env.unwrapped.set_task(tasks[i // episodes])

    def run(self, params: dict, seed: int) -> int:
        T, E = len(self.tasks), self.episodes
        gen = torch.Generator().manual_seed(seed)
        obs, _ = self.venv.reset(seed=seed)
        for _ in range(self.horizon):
            with torch.no_grad():
                o = torch.as_tensor(obs, dtype=torch.float32).view(T, E, -1)
                mean, log_std = self.policy.dist(params, o)
                action = mean + log_std.exp() * torch.randn(mean.shape, generator=gen)
            obs, _, _, _, _ = self.venv.step(action.reshape(T * E, -1).clamp(-1, 1).numpy())
        return T * E * self.horizon

    def close(self) -> None:
        self.venv.close()


def policy_seconds(policy, params: dict, obs: torch.Tensor, rng: np.random.Generator) -> float:
    """Time of the sampler's policy calls on recorded observations ``[T, E, H, o]``."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for t in range(obs.shape[2]):
            policy.sample_actions(policy.dist(params, obs[:, :, t]), rng)
    return time.perf_counter() - t0


def build_runners(args, names, policy, params, tasks) -> dict:
    """Samplers (warmed up: envs built, workers started) and the hand-written loop."""
    runners: dict = {}
    n = args.tasks * args.episodes
    for name in names:
        if name == "sync_vector":
            runners[name] = HandWrittenSyncVector(
                args.env, policy, tasks, args.episodes, args.horizon, args.env_kwargs
            )
            continue
        workers = args.num_workers if name in ("process", "ray") else None
        sampler = Sampler(
            args.env,
            policy,
            env_kwargs=args.env_kwargs,
            backend=name,
            horizon=args.horizon,
            num_workers=workers,
        )
        if name in ("process", "ray"):
            sampler.sample(params, tasks, args.episodes, np.random.default_rng(0))
        else:
            sampler.env(n)
        runners[name] = sampler
    return runners


class Ceiling:
    """Open-loop replay of executed actions on a bare ``mujoco.batch`` (None for other envs)."""

    def __init__(self, env_id: str, tasks: list[dict], episodes: int, kwargs: dict):
        n = len(tasks) * episodes
        self.venv = gymnasium.make_vec(
            env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs
        )
        self.u = self.venv.unwrapped
        self.available = hasattr(self.u, "batch")
        if self.available:
            self.u.set_tasks([t for t in tasks for _ in range(episodes)])
            self.u.reset(seed=0)
            self.init = (self.u.qpos.copy(), self.u.qvel.copy())

    def steps_per_s(self, actions: torch.Tensor) -> float:
        """Replay ``actions [T, E, H, a]`` (clipped to the action box as the sampler does)."""
        t, e, h = actions.shape[:3]
        acts = actions.clamp(-1, 1).reshape(t * e, h, -1).transpose(0, 1).numpy()
        return bench_ceiling(self.u, self.init, list(acts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="metarl/HalfCheetahVel-v0")
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--episodes", type=int, default=20, help="episodes per task")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-workers", type=int, default=None, help="process/ray workers")
    p.add_argument(
        "--backends",
        nargs="*",
        default=None,
        choices=ALL,
        help=f"default: all of {ALL} (ray when importable)",
    )
    p.add_argument(
        "--env-kwargs",
        type=json.loads,
        default={},
        help="JSON keyword arguments for the env, e.g. '{\"frame_skip\": 5}'",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    args = p.parse_args(argv)
    if not isinstance(args.env_kwargs, dict):
        p.error(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r}")
    for name in ("tasks", "episodes", "horizon", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    names = list(args.backends or [b for b in ALL if b != "ray" or ray_importable()])
    torch.set_num_threads(1)

    env = gymnasium.make(args.env, **args.env_kwargs)
    tasks = env.unwrapped.sample_tasks(args.tasks, np.random.default_rng(0))
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    policy = GaussianMLPPolicy(
        obs_dim, act_dim, (100, 100), generator=torch.Generator().manual_seed(0)
    )
    params = adapted_params(policy, args.tasks)
    t_setup = time.perf_counter()
    runners = build_runners(args, names, policy, params, tasks)
    ceiling = Ceiling(args.env, tasks, args.episodes, args.env_kwargs)
    setup_s = time.perf_counter() - t_setup

    rates: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names if name != "sync_vector"}
    ceilings: list[float] = []
    split: list[dict] = []
    for r in range(args.repeats):
        for name in names:
            runner = runners[name]
            t0 = time.perf_counter()
            if name == "sync_vector":
                steps = runner.run(params, seed=r)
            else:
                traj = runner.sample(params, tasks, args.episodes, np.random.default_rng(r))
                steps = traj.env_steps
            wall = time.perf_counter() - t0
            rates[name].append(steps / wall)
            if name == "sync_vector" or not ceiling.available:
                continue
            ceilings.append(ceiling.steps_per_s(traj.actions))
            ratios[name].append(rates[name][-1] / ceilings[-1])
            if name == "batched":
                pol_s = policy_seconds(policy, params, traj.obs, np.random.default_rng(r))
                split.append({"wall": wall, "policy": pol_s, "physics": steps / ceilings[-1]})
        line = "  ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items())
        print(f"repeat {r + 1}/{args.repeats}: {line}  (steps/s)", flush=True)

    for runner in runners.values():
        runner.close()
    ceiling.venv.close()
    result = summarize(args, rates, ratios, ceilings, split, setup_s)
    if args.json:
        print(json.dumps(result))


def summarize(args, rates, ratios, ceilings, split, setup_s) -> dict:
    """Medians, the table, and the JSON object."""
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = {k: statistics.median(v) for k, v in ratios.items() if v}
    ceil = statistics.median(ceilings) if ceilings else None
    ours = {k: v for k, v in med.items() if k in SAMPLER_BACKENDS}
    best = max(ours, key=ours.get) if ours else None
    print(f"\n{'backend':12s} {'steps/s':>10s} {'/ceiling':>9s}  (median; ratio paired per run)")
    for k, v in med.items():
        shown = f"{ratio[k]:9.2f}" if k in ratio else f"{'-':>9s}"
        print(f"{k:12s} {v:10,.0f} {shown}")
    if ceil:
        print(f"{'ceiling':12s} {ceil:10,.0f}")
    sync = rates.get("sync_vector")
    speedup = None
    if best and sync:  # per repeat, best backend against the hand-written loop of that repeat
        speedup = statistics.median(a / b for a, b in zip(rates[best], sync))
    result = {
        "env": args.env,
        "env_kwargs": args.env_kwargs,
        "tasks": args.tasks,
        "episodes": args.episodes,
        "horizon": args.horizon,
        "copies": args.tasks * args.episodes,
        "repeats": args.repeats,
        "torch_threads": 1,
        "setup_s": round(setup_s, 2),
        "backends": {
            k: {
                "steps_per_s": round(v),
                "runs": [round(x) for x in rates[k]],
                "ratio_to_ceiling": round(ratio[k], 3) if k in ratio else None,
            }
            for k, v in med.items()
        },
        "best_backend": best,
        "best_steps_per_s": round(ours[best]) if best else None,
        "ceiling_steps_per_s": round(ceil) if ceil else None,
        "ratio_to_ceiling": round(ratio[best], 3) if best in ratio else None,
        "speedup_vs_sync_vector": round(speedup, 2) if speedup else None,
    }
    if split:  # fractions of each run's wall time, medians over runs (physics > 1: noise)
        parts = {
            k: statistics.median(s[k] / s["wall"] for s in split) for k in ("physics", "policy")
        }
        parts["rest"] = max(0.0, 1 - parts["physics"] - parts["policy"])
        result["batched_time_split"] = {k: round(v, 3) for k, v in parts.items()}
        print(f"batched time split: {result['batched_time_split']}")
    return result


if __name__ == "__main__":
    main()
