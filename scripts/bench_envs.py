"""Env steps per second per family: single env, Gymnasium SyncVectorEnv, our batched fast path,
and for MuJoCo families the physics ceiling (``mujoco.batch`` alone, same copies and threads,
replaying open-loop the very actions the batched run produced).

The batched run drives actions from a fixed random tanh-linear map of the observation (numpy),
so actions are policy-like, not uniform random (random controls cost ~24% more physics).

    python scripts/bench_envs.py --families HalfCheetahVel --num-envs 800 --steps 200 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import gymnasium
import numpy as np

import envs
from envs.registry import FAMILIES

MUJOCO = {
    "HalfCheetahVel",
    "HalfCheetahDir",
    "AntVel",
    "AntDir",
    "AntGoal",
    "HalfCheetahRandParams",
    "HopperRandParams",
    "Walker2dRandParams",
}


def policy_fn(obs_space, act_space, rng):
    d = int(np.prod(obs_space.shape))
    if isinstance(act_space, gymnasium.spaces.Discrete):
        W = rng.normal(0, 1 / np.sqrt(d), (d, act_space.n))
        return lambda o: np.argmax(np.asarray(o, np.float64).reshape(len(o), -1) @ W, axis=1)
    k = act_space.shape[0]
    W = rng.normal(0, 1 / np.sqrt(d), (d, k))
    lo, hi = act_space.low, act_space.high
    return lambda o: (
        lo + (hi - lo) * 0.5 * (1 + np.tanh(np.asarray(o, np.float64).reshape(len(o), -1) @ W))
    )


def bench_single(env_id, steps, rng):
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    acts = [env.action_space.sample() for _ in range(steps)]
    t0 = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def bench_sync(env_id, steps, n=8):
    venv = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(env_id)] * n)
    venv.reset(seed=0)
    venv.action_space.seed(0)
    acts = [venv.action_space.sample() for _ in range(steps)]
    t0 = time.perf_counter()
    for a in acts:
        venv.step(a)
    return steps * n / (time.perf_counter() - t0)


def bench_batched(env_id, num_envs, steps, nthread, rng):
    kw = {"nthread": nthread} if nthread else {}
    name = env_id.split("/")[1].rsplit("-", 1)[0]
    if name not in MUJOCO:
        kw = {}
    venv = gymnasium.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw
    )
    pol = policy_fn(venv.single_observation_space, venv.single_action_space, rng)
    obs, _ = venv.reset(seed=0)
    u = venv.unwrapped
    init = (u.qpos.copy(), u.qvel.copy()) if hasattr(u, "batch") else None
    recorded = []
    t0 = time.perf_counter()
    for _ in range(steps):
        a = pol(obs)
        obs, rew, term, trunc, info = venv.step(a)
        if init is not None:
            recorded.append(a)
    rate = steps * num_envs / (time.perf_counter() - t0)
    ceiling = None
    if init is not None:
        ceiling = bench_ceiling(u, init, recorded)
    return rate, ceiling


def bench_ceiling(u, init, recorded):
    from mujoco import batch as mjbatch

    b = mjbatch.Batch(u.model, u.num_envs, u.nthread)
    fields = u.single_env._model_fields(u.get_tasks())
    for name, values in fields.items():
        b.expand(name)[:] = values
    if fields:
        b.set_const()
    qpos, qvel, ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
    b.reset(stage=0)
    qpos[:], qvel[:] = init
    acts = [np.asarray(a, np.float64) for a in recorded]
    t0 = time.perf_counter()
    for a in acts:
        ctrl[:] = a
        try:
            b.step(nstep=u.frame_skip)
        except mjbatch.SimulationError:
            pass
    return len(acts) * u.num_envs / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="*", default=None, help="names, e.g. HalfCheetahVel")
    p.add_argument("--num-envs", type=int, default=800, help="copies for the batched run")
    p.add_argument("--steps", type=int, default=200, help="steps per run")
    p.add_argument("--single-steps", type=int, default=2000)
    p.add_argument("--nthread", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if "torch" in sys.modules:  # torch's idle threads starve MuJoCo's
        sys.modules["torch"].set_num_threads(1)
    names = args.families or [f.name for f in FAMILIES]
    rng = np.random.default_rng(0)
    results = {}
    print(
        f"{'family':24s} {'single':>10s} {'sync(8)':>10s} {'batched':>10s} {'ceiling':>10s} "
        f"{'ratio':>6s}"
    )
    for name in names:
        env_id = f"{envs.registry.NAMESPACE}/{name}-v0"
        single = bench_single(env_id, args.single_steps, rng)
        sync = bench_sync(env_id, max(args.single_steps // 8, 50))
        batched, ceiling = bench_batched(env_id, args.num_envs, args.steps, args.nthread, rng)
        ratio = batched / ceiling if ceiling else None
        results[name] = {
            "single_steps_per_s": round(single),
            "sync_steps_per_s": round(sync),
            "batched_steps_per_s": round(batched),
            "ceiling_steps_per_s": round(ceiling) if ceiling else None,
            "ratio": round(ratio, 3) if ratio else None,
            "num_envs": args.num_envs,
        }
        c = f"{ceiling:10.0f}" if ceiling else f"{'-':>10s}"
        r = f"{ratio:6.2f}" if ratio else f"{'-':>6s}"
        print(f"{name:24s} {single:10.0f} {sync:10.0f} {batched:10.0f} {c} {r}", flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
