"""Which held-out tasks does a meta-RL run adapt to? Its evaluation's returns, binned by a task key.

An evaluation (``summary.json`` or ``evaluations/*.json`` of a run made at or after commit
f999ae5) keeps each task it drew (``eval.tasks``, the env's task dicts) and each task's mean
return after 0..K adaptation steps (``eval.values``, [steps][tasks]). This prints, for each bin
of one task key, how many tasks fell in it and their mean return after each step, as a Markdown
table. A vector-valued key (a goal position) is binned by its Euclidean norm (the distance of the
goal from the start).

    python scripts/investigations/returns_by_task.py runs/ant_vel/s2 --key velocity --edges 0 1 2 3
    python scripts/investigations/returns_by_task.py runs/ant_vel/s2/evaluations/test-40tasks-maml_code_ant_vel.json --key velocity --edges 0 1 2 3
    python scripts/investigations/returns_by_task.py runs/ant_goal/s1 --key goal --edges 0 1.5 3 4.25

A run directory means its ``summary.json`` (the evaluation at the end of training) when that
keeps per-task returns, else ``metarl evaluate RUN``'s ``evaluations/test-<N>tasks.json``. Bins
are half-open, [lo, hi), except the last, which includes its upper edge.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from metarl.run.rundir import evaluation_path


def run_evaluation_file(run_dir: Path) -> Path:
    """A run directory's evaluation with per-task returns: its ``summary.json`` if that has them,
    else ``metarl evaluate``'s re-evaluation of the same checkpoint on as many test tasks."""
    summary = run_dir / "summary.json"
    if summary.is_file():
        curve = json.loads(summary.read_text()).get("eval", {})
        if curve.get("values") or "num_tasks" not in curve:
            return summary
        return evaluation_path(run_dir, "test", int(curve["num_tasks"]))
    found = sorted(run_dir.glob("evaluations/test-*tasks.json"))  # a run copied out mid-training
    if len(found) != 1:
        raise SystemExit(
            f"{run_dir} has no summary.json and {len(found)} test evaluations; pass the "
            f"evaluation file itself"
        )
    return found[0]


def load_evaluation(path: Path) -> dict:
    """The ``eval`` record of an evaluation file, or of a run directory's own evaluation."""
    if path.is_dir():
        path = run_evaluation_file(path)
    if not path.is_file():
        raise SystemExit(
            f"{path}: no such evaluation file; pass a run directory or a JSON file it wrote"
        )
    record = json.loads(path.read_text()).get("eval", {})
    if not record.get("tasks") or not record.get("values"):
        raise SystemExit(
            f"{path}: this evaluation keeps no per-task returns (eval.tasks / eval.values); runs "
            f"made before commit f999ae5 get them from `metarl evaluate RUN`"
        )
    return record


def task_value(task: dict, key: str) -> float:
    if key not in task:
        raise SystemExit(f"task key {key!r} not in the evaluated tasks; they have {sorted(task)}")
    value = task[key]
    if isinstance(value, (list, tuple)):
        return math.sqrt(sum(float(v) ** 2 for v in value))
    return float(value)


def bin_rows(record: dict, key: str, edges: list[float]) -> list[tuple[str, int, list[float]]]:
    """(label, task count, mean return after each step) for each bin of ``key``."""
    values = [task_value(task, key) for task in record["tasks"]]
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        members = [t for t, v in enumerate(values) if lo <= v < hi or (last and v == hi)]
        means = [
            sum(step[t] for t in members) / len(members) if members else math.nan
            for step in record["values"]
        ]
        label = f"[{lo:g}, {hi:g}{']' if last else ')'}"
        rows.append((label, len(members), means))
    outside = sum(1 for v in values if not edges[0] <= v <= edges[-1])
    if outside:
        print(
            f"note: {outside} task(s) outside [{edges[0]:g}, {edges[-1]:g}] are in no bin",
            file=sys.stderr,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluation", type=Path, help="a run directory or an evaluation JSON file")
    parser.add_argument(
        "--key", required=True, help="the task key to bin by (velocity, direction, goal, ...)"
    )
    parser.add_argument(
        "--edges", type=float, nargs="+", required=True, help="bin edges, increasing"
    )
    args = parser.parse_args()
    if len(args.edges) < 2 or any(b <= a for a, b in zip(args.edges, args.edges[1:])):
        parser.error("--edges needs at least two increasing numbers, e.g. --edges 0 1 2 3")
    record = load_evaluation(args.evaluation)
    steps = record.get("steps", list(range(len(record["values"]))))
    rows = bin_rows(record, args.key, args.edges)
    header = ["tasks"] + [f"{s} step{'' if s == 1 else 's'}" for s in steps]
    print(f"| {args.key} | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for label, count, means in rows:
        print(f"| {label} | {count} | " + " | ".join(f"{m:.1f}" for m in means) + " |")


if __name__ == "__main__":
    main()
