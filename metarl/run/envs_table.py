"""``metarl envs``: the registered task-distribution environments as a table."""

from __future__ import annotations

from rich.table import Table

COLUMNS = {
    "id": "id",
    "kind": "kind",
    "task": "task parameters: sampling range (valid range)",
    "horizon": "horizon",
    "obs": "obs",
    "action": "action",
    "fast_path": "fast path",
}


def envs_table() -> Table:
    from envs.registry import describe_families

    table = Table(title="task-distribution environments: import envs; gymnasium.make(id)")
    for title in COLUMNS.values():
        table.add_column(title)
    for row in describe_families():
        table.add_row(*(str(row[key]) for key in COLUMNS))
    return table
