"""Write the MAML code's own test tasks to ``configs/tasks/`` (``metarl evaluate --task-file``).

The authors' test scripts (cbfinn/maml_rl, ``maml_examples/test_maml_*.py``) draw their 40 test
tasks with NumPy's legacy global generator right after ``np.random.seed(1)``; the paper's
tables average over these tasks. Drawing them the same way here (a ``RandomState(1)``, the
legacy generator those calls use) gives the very same tasks, so a run can be compared with the
paper on the paper's targets rather than on 40 of its own:

- ``test_maml_point.py``: goals ``uniform(-0.5, 0.5, size=(40, 2))`` (2D navigation);
- ``test_maml_cheetah.py``: velocities ``uniform(0.0, 2.0, size=(40,))`` (HalfCheetahVel);
- ``test_maml_ant.py``: velocities ``uniform(0.0, 3.0, size=(40,))`` (AntVel).

    python scripts/maml_code_test_tasks.py   # rewrites the three files
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "configs" / "tasks"

# file stem -> (the authors' script, task key, low, high, shape of the draw)
TASK_SETS: dict[str, tuple[str, str, float, float, tuple[int, ...]]] = {
    "maml_code_navigation2d": ("test_maml_point.py", "goal", -0.5, 0.5, (40, 2)),
    "maml_code_half_cheetah_vel": ("test_maml_cheetah.py", "velocity", 0.0, 2.0, (40,)),
    "maml_code_ant_vel": ("test_maml_ant.py", "velocity", 0.0, 3.0, (40,)),
}


def maml_code_tasks(key: str, low: float, high: float, shape: tuple[int, ...]) -> list[dict]:
    """The draw ``np.random.seed(1); np.random.uniform(low, high, size=shape)`` as task dicts."""
    values = np.random.RandomState(1).uniform(low, high, size=shape)
    return [{key: v.tolist()} for v in values]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for stem, (script, key, low, high, shape) in TASK_SETS.items():
        source = (
            f"cbfinn/maml_rl maml_examples/{script}: np.random.seed(1); "
            f"np.random.uniform({low}, {high}, size={shape}), the paper's 40 test tasks"
        )
        text = json.dumps({"source": source, "tasks": maml_code_tasks(key, low, high, shape)})
        (OUT / f"{stem}.json").write_text(text + "\n")
        print(f"wrote {OUT / stem}.json")


if __name__ == "__main__":
    main()
