"""Check that refactoring changed no number: short runs compared with stored reference outputs.

Each case trains a shipped config for a few iterations through the ``metarl train`` command, as a
user would, then compares its ``metrics.jsonl`` and ``summary.json`` with the copy stored under
``scripts/reference_outputs/`` by ``--record``. Wall-clock entries (``time/*``, ``perf/*``,
``*time_s``) and the description of the machine (``device``, ``device_name``) are dropped before
comparing; everything else must be equal exactly (floats included; keys that only the new run
has, a metric added since the references were recorded, are listed, not compared), so the check is only
meaningful on the machine and library builds that recorded it (on the CPU): the same commit gives
other last digits on another CPU or another build of torch, NumPy, MuJoCo or Pillow. Each
reference therefore stores the machine it was recorded on (``machine``: the CPU's model name and
those libraries' versions), and a comparison on a different one says so beside its result.

    python scripts/check_reference_outputs.py                 # compare every case
    python scripts/check_reference_outputs.py --only nav_maml  # one case
    python scripts/check_reference_outputs.py --record         # overwrite the references

The Omniglot case reads the dataset from ``METARL_DATA`` (the folder holding ``omniglot/``), as
``metarl train`` does.

``task_batching`` is pinned to ``vmap`` so that the timing-based ``auto`` choice cannot change
the arithmetic between runs, and ``train.device`` to ``cpu`` so that a GPU machine checks the
same arithmetic. Exit status 0 when every case matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE = Path(__file__).resolve().parent / "reference_outputs"

# name -> (config, iterations, eval tasks, extra --set overrides)
CASES: dict[str, tuple[str, int, int, list[str]]] = {
    # the meta-RL references are 1-thread numbers (the configs used to set it)
    "nav_maml_trpo": ("configs/maml_trpo/navigation2d.yaml", 3, 4, ["train.num_threads=1"]),
    "nav_reptile": ("configs/reptile/navigation2d.yaml", 3, 4, ["train.num_threads=1"]),
    "sinusoid_maml": (
        "configs/fewshot/sinusoid_maml.yaml",
        200,
        50,
        ["train.log_every=10", "algo.task_batching=vmap"],
    ),
    "sinusoid_metasgd": (
        "configs/fewshot/sinusoid_metasgd.yaml",
        200,
        50,
        ["train.log_every=10", "algo.task_batching=vmap"],
    ),
    "sinusoid_reptile": (
        "configs/fewshot/sinusoid_reptile.yaml",
        200,
        50,
        ["train.log_every=10", "algo.task_batching=vmap"],
    ),
    "omniglot_5w1s_protonets": (
        "configs/fewshot/omniglot_5w1s_protonets.yaml",
        20,
        10,
        ["train.log_every=1", "algo.task_batching=vmap"],
    ),
    "omniglot_5w1s_maml": (
        "configs/fewshot/omniglot_5w1s_maml.yaml",
        20,
        10,
        ["train.log_every=1", "algo.task_batching=vmap"],
    ),
    "half_cheetah_dir": (
        "configs/maml_trpo/half_cheetah_dir.yaml",
        2,
        2,
        ["train.num_threads=1"],
    ),
    # normalised observations and exact curvature, which the Dir case does not reach
    "half_cheetah_vel": (
        "configs/maml_trpo/half_cheetah_vel.yaml",
        2,
        2,
        ["train.num_threads=1"],
    ),
}


MACHINE_KEYS = ("device", "device_name")
LIBRARIES = ("torch", "numpy", "mujoco", "gymnasium", "pillow")


def machine() -> dict[str, str]:
    """What the exact numbers depend on besides the code: the CPU model and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    found = {"cpu": cpu}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _numeric(record: dict) -> dict:
    """Drop wall-clock entries, which differ between any two runs, and the machine's name."""
    out = {}
    for key, value in record.items():
        if key.startswith(("time/", "perf/")) or key.endswith("time_s") or key in MACHINE_KEYS:
            continue
        out[key] = _numeric(value) if isinstance(value, dict) else value
    return out


def run_case(name: str) -> dict:
    config, iterations, eval_tasks, sets = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        cmd = [sys.executable, "-m", "metarl.cli", "train", str(ROOT / config)]
        cmd += ["--run-dir", str(run_dir), "--iterations", str(iterations)]
        cmd += ["--eval-tasks", str(eval_tasks)]
        cmd += ["--set", "train.device=cpu"]  # the references are CPU numbers (auto: a GPU)
        for item in sets:
            cmd += ["--set", item]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: metarl train failed:\n{done.stderr[-2000:]}")
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        metrics = [_numeric(json.loads(line)) for line in lines if line.strip()]
        summary = _numeric(json.loads((run_dir / "summary.json").read_text()))
    return {"metrics": metrics, "summary": summary}


def first_difference(expected, actual, path: str = "", new: set | None = None) -> str | None:
    """Where ``actual`` first differs from ``expected``; keys only ``actual`` has (a metric a
    later version logs in addition) are collected in ``new``, not counted as a difference."""
    new = set() if new is None else new
    if type(expected) is not type(actual):
        return f"{path or '<root>'}: {expected!r} != {actual!r}"
    if isinstance(expected, dict):
        new.update(f"{path}/{key}".split("]/")[-1] for key in set(actual) - set(expected))
        for key in sorted(expected):
            if key not in actual:
                return f"{path}/{key}: missing from this run's output"
            found = first_difference(expected[key], actual[key], f"{path}/{key}", new)
            if found:
                return found
        return None
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{path}: length {len(expected)} != {len(actual)}"
        for i, (a, b) in enumerate(zip(expected, actual)):
            found = first_difference(a, b, f"{path}[{i}]", new)
            if found:
                return found
        return None
    if isinstance(expected, float) and math.isnan(expected) and math.isnan(actual):
        return None  # a diverged value stays diverged
    return None if expected == actual else f"{path}: {expected!r} != {actual!r}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="cases to run")
    parser.add_argument("--record", action="store_true", help="overwrite the stored references")
    args = parser.parse_args()
    names = args.only or list(CASES)
    here = machine()
    failed = 0
    for name in names:
        outputs = run_case(name)
        stored = STORE / f"{name}.json"
        if args.record:
            STORE.mkdir(exist_ok=True)
            stored.write_text(json.dumps({"machine": here, **outputs}, indent=1) + "\n")
            print(f"{name}: recorded {len(outputs['metrics'])} metric lines -> {stored}")
            continue
        if not stored.exists():
            print(f"{name}: no reference at {stored}; record one with --record")
            failed += 1
            continue
        reference = json.loads(stored.read_text())
        recorded_on = reference.pop("machine", None)
        new: set[str] = set()
        difference = first_difference(reference, outputs, new=new)
        if difference:
            failed += 1
        added = f" (new keys, not compared: {', '.join(sorted(new))})" if new else ""
        print(f"{name}: {'DIFFERS at ' + difference if difference else 'identical'}{added}")
        if recorded_on != here:
            print(f"  recorded on {recorded_on or 'an unrecorded machine'}; this is {here}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
