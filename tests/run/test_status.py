"""`metarl status`: a run's state, progress, pace and result, read from its files."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from cli_helpers import SINUSOID, quick_args

from metarl.cli import main
from metarl.run.lock import RunLock
from metarl.run.metrics import read_metrics
from metarl.run.status import find_runs, run_status


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("status") / "runs" / "sin"
    assert main(["train", str(SINUSOID), "--run-dir", str(run), *quick_args(40)]) == 0
    return run


def test_a_finished_run_shows_its_result_and_measured_pace(finished):
    s = run_status(finished)
    assert (s.state, s.iteration, s.total, s.checkpoint) == ("finished", 40, 40, 40)
    ev = json.loads((finished / "summary.json").read_text())["eval"]
    assert s.result == f"mse 0 steps {ev['mean'][0]:.4g}, 1 step {ev['mean'][1]:.4g}"
    rows = read_metrics(finished)
    walls = [r["time/wall"] for r in rows]
    assert walls == sorted(walls) and len(walls) == 9  # 8 training rows and the test row
    per_iteration = sorted((b - a) / 5 for a, b in zip(walls[:8], walls[1:8]))  # every 5th
    assert s.paced and s.seconds_per_iteration == pytest.approx(per_iteration[3])  # median
    assert s.latest is not None and s.latest[0].startswith("train/")


def test_a_run_being_trained_names_its_process(finished, tmp_path):
    run = shutil.copytree(finished, tmp_path / "run")
    with RunLock(run):
        s = run_status(run)
    assert s.state == f"training (pid {os.getpid()})"
    assert run_status(run).state == "finished"  # the lock is gone with its holder


def test_an_extended_run_is_stopped_and_its_summary_dated(finished, tmp_path):
    run = shutil.copytree(finished, tmp_path / "run")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("iterations: 40", "iterations: 60"))
    s = run_status(run)
    assert (s.state, s.total, s.checkpoint) == ("stopped", 60, 40)
    assert s.result is not None and s.result.startswith("at 40: mse 0 steps")


def test_status_finds_runs_below_a_directory_and_refuses_one_without(finished, tmp_path, capsys):
    assert find_runs([finished.parent]) == [finished]
    assert main(["status", str(finished.parent)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "40 / 40" in out
    assert main(["status", str(tmp_path)]) == 2
    assert "holds no metarl run" in capsys.readouterr().err
