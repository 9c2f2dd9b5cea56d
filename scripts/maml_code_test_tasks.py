"""Write the MAML code's own test tasks to ``configs/tasks/`` (``metarl evaluate --task-file``).

The authors' test scripts (cbfinn/maml_rl, ``maml_examples/test_maml_*.py``) draw their 40 test
tasks with NumPy's legacy global generator right after ``np.random.seed(1)`` (AntDir's after
``np.random.seed(2)``); the paper's tables average over these tasks. Drawing them the same way
here (a ``RandomState`` with that seed, the legacy generator those calls use) gives the very
same tasks, so a run can be compared with the paper on the paper's targets rather than on 40 of
its own:

- ``test_maml_point.py``: goals ``uniform(-0.5, 0.5, size=(40, 2))`` (2D navigation);
- ``test_maml_cheetah.py``: velocities ``uniform(0.0, 2.0, size=(40,))`` (HalfCheetahVel);
- ``test_maml_ant.py``: velocities ``uniform(0.0, 3.0, size=(40,))`` (AntVel);
- ``test_maml_cheetah_direc.py``: ``uniform(0.0, 2.0, size=(40,))`` after ``np.random.seed(1)``,
  each value passed to rllab's ``HalfCheetahEnvRandDirec``, whose ``reset`` runs backward
  (direction -1) below 1.0 and forward (+1) from it: 22 backward, 18 forward (HalfCheetahDir);
- ``test_maml_ant_direc.py``: ``uniform(0.0, 3.0, size=(40,))`` after ``np.random.seed(2)``,
  backward below 1.5 (``AntEnvRandDirec.reset``) (AntDir).

    python scripts/maml_code_test_tasks.py   # rewrites the five files
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "configs" / "tasks"


@dataclass(frozen=True)
class TaskDraw:
    """One test script's draw: ``np.random.seed(seed); np.random.uniform(low, high, size=shape)``."""

    script: str  # in maml_examples/ of cbfinn/maml_rl
    key: str  # the task key the values go to
    seed: int
    low: float
    high: float
    shape: tuple[int, ...]
    # direction tasks: the value from which the rllab env runs forward; None: the value is the task
    forward_from: float | None = None


# file stem (in configs/tasks/) -> the draw
TASK_SETS: dict[str, TaskDraw] = {
    "maml_code_navigation2d": TaskDraw("test_maml_point.py", "goal", 1, -0.5, 0.5, (40, 2)),
    "maml_code_half_cheetah_vel": TaskDraw("test_maml_cheetah.py", "velocity", 1, 0.0, 2.0, (40,)),
    "maml_code_ant_vel": TaskDraw("test_maml_ant.py", "velocity", 1, 0.0, 3.0, (40,)),
    "maml_code_half_cheetah_dir": TaskDraw(
        "test_maml_cheetah_direc.py", "direction", 1, 0.0, 2.0, (40,), forward_from=1.0
    ),
    "maml_code_ant_dir": TaskDraw(
        "test_maml_ant_direc.py", "direction", 2, 0.0, 3.0, (40,), forward_from=1.5
    ),
}


def maml_code_tasks(
    key: str,
    seed: int,
    low: float,
    high: float,
    shape: tuple[int, ...],
    forward_from: float | None = None,
) -> list[dict]:
    """The draw ``np.random.seed(seed); np.random.uniform(low, high, size=shape)`` as task
    dicts; with ``forward_from``, each value becomes the direction its rllab env runs in
    (-1 below it, +1 from it)."""
    values = np.random.RandomState(seed).uniform(low, high, size=shape)
    if forward_from is not None:
        return [{key: -1.0 if v < forward_from else 1.0} for v in values]
    return [{key: v.tolist()} for v in values]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for stem, d in TASK_SETS.items():
        source = (
            f"cbfinn/maml_rl maml_examples/{d.script}: np.random.seed({d.seed}); "
            f"np.random.uniform({d.low}, {d.high}, size={d.shape}), the paper's 40 test tasks"
        )
        if d.forward_from is not None:
            source += f" (direction -1 below {d.forward_from}, +1 from it, as the env's reset)"
        tasks = maml_code_tasks(d.key, d.seed, d.low, d.high, d.shape, d.forward_from)
        text = json.dumps({"source": source, "tasks": tasks})
        (OUT / f"{stem}.json").write_text(text + "\n")
        print(f"wrote {OUT / stem}.json")


if __name__ == "__main__":
    main()
