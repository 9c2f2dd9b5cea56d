"""One MAML-TRPO meta-iteration of the shipped HalfCheetah configs, split into phases, beside its
physics ceiling.

Each config is built as ``metarl train`` builds it (real env, sampler and TRPO step) and run for
``--warmup`` iterations, then ``--repeats`` timed ones, in one process. The phases are timed by
wrapping the methods that do them (timing only, the arithmetic is untouched), each exclusive of
the phases it calls, except that everything inside CG and the line search counts as theirs:

============== ==========================================================================
phase          what
============== ==========================================================================
sampling       ``Sampler.sample`` (policy + physics + bookkeeping), every round
advantages     baseline fits, GAE and normalisation (``InnerLoop.batch``)
inner_step     the inner policy-gradient steps outside CG and the line search
curvature      building the trust region's Hessian-vector product (support-gradient graph)
outer_grad     the surrogate's gradient through the inner step (``trpo_update`` less CG and
               line search)
cg             conjugate gradient: its Hessian-vector products
line_search    the candidates (each re-runs the inner step, surrogate and KL)
diagnostics    the per-iteration ``diag/`` metrics over the pre-update episodes
other          the rest of the iteration (Python, bookkeeping)
============== ==========================================================================

``ceiling_s`` is the physics alone: ``mujoco.batch`` replaying open-loop the actions this very
iteration executed (every sampling round, same copies and threads), right after the iteration,
so load changes move both sides of the paired ratio alike. ``ratio_to_ceiling`` = iteration /
ceiling; medians over the repeats.

    python scripts/bench_iteration.py [--configs A.yaml B.yaml] [--warmup 1] [--repeats 3]
                                     [--set KEY=VALUE ...] [--device cpu|cuda|...] [--json]

``--device`` (default ``cpu``) is where the learner computes (``train.device``); on a GPU every
phase boundary waits for the GPU's queued work, so each phase is charged its own kernels.

With ``--json`` the last line is one JSON object, per config: ``iteration_s``, ``ceiling_s``,
``ratio_to_ceiling`` and ``phases_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from metarl.allocator import keep_freed_memory
from metarl.threads import sleep_idle_threads

sleep_idle_threads()  # as the metarl command does, before torch loads
FREED_MEMORY_KEPT = keep_freed_memory()  # as the metarl command does (see metarl.allocator)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampler import Ceiling  # noqa: E402

import metarl.rl.algos.maml_trpo as maml_trpo  # noqa: E402
import metarl.rl.experiment as rl_experiment  # noqa: E402
from metarl.rl import build  # noqa: E402
from metarl.run.config import load_config  # noqa: E402
from metarl.run.device import CPU, device_name, resolve_device  # noqa: E402

CONFIGS = ["configs/maml_trpo/half_cheetah_vel.yaml", "configs/maml_trpo/half_cheetah_dir.yaml"]
OUTERMOST = {"cg", "line_search"}  # everything they call is theirs


class PhaseClock:
    """Exclusive wall time per phase of wrapped callables (see the module docstring)."""

    def __init__(self, sync=lambda: None) -> None:
        self.sync = sync  # waits for the device's queued work (a GPU's), at every boundary
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [phase, start, time spent in nested phases]

    def wrap(self, phase: str, fn):
        def timed(*args, **kwargs):
            if any(frame[0] in OUTERMOST for frame in self.stack):
                return fn(*args, **kwargs)
            self.sync()
            frame = [phase, time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.stack.pop()
                total = time.perf_counter() - frame[1]
                self.seconds[phase] += total - frame[2]
                if self.stack:
                    self.stack[-1][2] += total

        return timed


def instrument(exp, clock: PhaseClock, rounds: list) -> None:
    """Wrap the phases of ``exp`` in ``clock``; record each sampling round's tasks and actions."""
    sample = exp.sampler.sample

    def recorded_sample(params, tasks, episodes, rng=None):
        traj = sample(params, tasks, episodes, rng)
        rounds.append((list(tasks), episodes, traj.actions.cpu()))
        return traj

    exp.sampler.sample = clock.wrap("sampling", recorded_sample)
    exp.inner.batch = clock.wrap("advantages", exp.inner.batch)
    exp.inner.step = clock.wrap("inner_step", exp.inner.step)
    exp.algo.curvature = clock.wrap("curvature", exp.algo.curvature)
    exp.algo.trpo_update = clock.wrap("outer_grad", exp.algo.trpo_update)
    maml_trpo.trpo_step_direction = clock.wrap("cg", maml_trpo.trpo_step_direction)
    maml_trpo.line_search = clock.wrap("line_search", maml_trpo.line_search)
    rl_experiment.policy_diagnostics = clock.wrap("diagnostics", rl_experiment.policy_diagnostics)


def ceiling_seconds(env_id: str, kwargs: dict, rounds: list) -> float:
    """Physics alone for the recorded rounds: steps / the replay's steps per second."""
    total = 0.0
    for tasks, episodes, actions in rounds:
        ceiling = Ceiling(env_id, tasks, episodes, kwargs)
        if not ceiling.available:  # not a mujoco.batch env
            ceiling.venv.close()
            return float("nan")
        try:
            steps = actions.shape[0] * actions.shape[1] * actions.shape[2]
            total += steps / ceiling.steps_per_s(actions)
        finally:
            ceiling.venv.close()
    return total


def bench_config(
    path: str, warmup: int, repeats: int, overrides: list[str], device: torch.device = CPU
) -> dict:
    cfg = load_config(path, overrides)
    exp = build(cfg, device=device)
    direction, search = maml_trpo.trpo_step_direction, maml_trpo.line_search
    diagnostics = rl_experiment.policy_diagnostics
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    clock, rounds = PhaseClock(sync), []
    instrument(exp, clock, rounds)
    rows = []
    try:
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        for i in range(warmup + repeats):
            clock.seconds.clear()
            rounds.clear()
            sync()
            t0 = time.perf_counter()
            exp.train_iteration(i)
            sync()
            wall = time.perf_counter() - t0
            if i < warmup:
                continue
            ceiling = ceiling_seconds(cfg.env.id, cfg.env.kwargs, rounds)
            phases = dict(clock.seconds)
            phases["other"] = wall - sum(phases.values())
            rows.append({"iteration_s": wall, "ceiling_s": ceiling, "phases_s": phases})
            print(f"{path} repeat {i - warmup}: {wall:.2f} s, ceiling {ceiling:.2f} s", flush=True)
    finally:
        maml_trpo.trpo_step_direction, maml_trpo.line_search = direction, search
        rl_experiment.policy_diagnostics = diagnostics
        exp.close()
    med = statistics.median
    names = rows[0]["phases_s"]
    return {
        "iteration_s": round(med(r["iteration_s"] for r in rows), 3),
        "ceiling_s": round(med(r["ceiling_s"] for r in rows), 3),
        "ratio_to_ceiling": round(med(r["iteration_s"] / r["ceiling_s"] for r in rows), 2),
        "phases_s": {k: round(med(r["phases_s"].get(k, 0.0) for r in rows), 3) for k in names},
        "env_steps": int(sum(a.numel() // a.shape[-1] for _, _, a in rounds)),
        "repeats": repeats,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default="cpu", help="where the learner computes: cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    print(f"device: {device} ({device_name(device)})", flush=True)
    results = {
        path: bench_config(path, args.warmup, args.repeats, args.overrides, device)
        for path in args.configs
    }
    print(f"\n{'config':45s} {'iteration':>10s} {'ceiling':>8s} {'ratio':>6s}  (median s)")
    for path, r in results.items():
        print(
            f"{path:45s} {r['iteration_s']:10.2f} {r['ceiling_s']:8.2f} {r['ratio_to_ceiling']:6.2f}"
        )
        print("    " + "  ".join(f"{k} {v:.2f}" for k, v in r["phases_s"].items()))
    if args.json:
        machine = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "freed_memory_kept": FREED_MEMORY_KEPT,  # MALLOC_MMAP_MAX_=65536: glibc's default
            "device": str(device),
            "device_name": device_name(device),
        }
        print(json.dumps({"machine": machine, "results": results}))


if __name__ == "__main__":
    main()
