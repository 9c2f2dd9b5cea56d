"""What computed a run: the package versions, the CPU and the vector instruction set torch's
kernels use, and the source's git commit when it runs from a checkout.

The same seed gives the same run on the same software and CPU. Another library version or
another CPU may round a float differently (numpy's float64 ``exp`` and ``log1p`` differ in the
last bit between its AVX2 and AVX-512 loops, for one), and in a run whose episodes end at a
threshold (CartPole) a last-bit difference can grow into a different run. Each start
and resume therefore appends one line to the run's ``provenance.jsonl``, and ``summary.json``
and every re-evaluation record the process that wrote them, so two runs that differ can be told
apart by what computed them.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PROVENANCE_NAME = "provenance.jsonl"
PACKAGES = ("metarl", "torch", "numpy", "gymnasium", "mujoco")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def source_commit() -> str | None:
    """The git commit of the checkout this package runs from (``+dirty`` when tracked files
    differ from it), or None for an installed copy (even one inside another repository, a
    virtual environment in a project, say) or a machine without git. Read once per process:
    the code a process runs is the code it loaded."""
    package = Path(__file__).resolve().parents[1]  # .../metarl
    try:
        top, commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.splitlines()  # fmt: skip
        if Path(top).resolve() / package.name != package:
            return None
        dirty = subprocess.run(
            ["git", "-C", top, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def provenance() -> dict[str, Any]:
    """This process's software and CPU, as recorded in ``summary.json``."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "commit": source_commit(),
        "python": platform.python_version(),
        "packages": versions,
        "cpu": cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
    }


def append_provenance(run_dir: Path, iteration: int) -> dict[str, Any]:
    """Append this process's :func:`provenance` to ``run_dir/provenance.jsonl`` with the
    iteration it starts from (0 for a new run) and the time; return the line's record."""
    record = {"iteration": iteration, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record.update(provenance())
    with open(Path(run_dir) / PROVENANCE_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return record
