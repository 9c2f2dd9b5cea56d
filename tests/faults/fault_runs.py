"""The short sinusoid run the fault tests interrupt, and its uninterrupted outcome."""

from __future__ import annotations

import json
from pathlib import Path

from metarl.cli import main
from metarl.run.metrics import read_metrics

SINUSOID = Path(__file__).resolve().parents[2] / "configs" / "fewshot" / "sinusoid_maml.yaml"
ARGS = [
    "--iterations", "30", "--eval-tasks", "10",
    "--set", "train.log_every=5", "--set", "train.checkpoint_every=10",
    "--set", "algo.task_batching=loop", "--set", "train.num_threads=1",
]  # fmt: skip
ROWS = [5, 10, 15, 20, 25, 30, 30]  # the training rows and the final evaluation


def finish_and_check(run: Path, capsys) -> None:
    """``--resume`` to the end; every row exactly once, as an uninterrupted run writes them
    (rows past the checkpoint were dropped on resume and logged again)."""
    assert main(["train", "--resume", str(run)]) == 0
    capsys.readouterr()
    assert [r["iteration"] for r in read_metrics(run)] == ROWS
    assert json.loads((run / "summary.json").read_text())["iterations"] == 30
