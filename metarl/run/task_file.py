"""Task files: a fixed list of meta-RL tasks to evaluate on (``metarl evaluate --task-file``).

A JSON file holding either a list of task dicts, ``[{"velocity": 0.83}, ...]``, or an object
with that list under ``"tasks"`` and, optionally, a ``"source"`` saying where the tasks come
from (``configs/tasks/`` holds the MAML code's own test tasks). Each task's keys and ranges are
checked by the env when the tasks are used.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError

_FORMAT = 'a JSON list of task objects, e.g. [{"velocity": 0.5}], or {"tasks": [...]}'


def read_task_file(path: Path) -> list[dict]:
    """The tasks in ``path``; a ``UserError`` naming the file and the expected format if it is
    missing, not JSON, or not a non-empty list of objects."""
    if not path.is_file():
        raise UserError(f"task file not found: {path} (expected {_FORMAT})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); expected {_FORMAT}") from None
    tasks = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
        raise UserError(f"{path} holds no tasks; expected {_FORMAT}")
    return tasks
