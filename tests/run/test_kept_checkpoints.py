"""Checkpoints kept for good (``train.keep_checkpoints_every``): each is the state the run had
at its iteration, so evaluating it gives what a run stopped there gives; ``--checkpoint all``
draws the learning curve; bad requests are one line."""

from __future__ import annotations

import json

import pytest
from cli_helpers import SINUSOID, quick_args

from metarl.cli import main
from metarl.run.checkpoint import load_checkpoint
from metarl.run.config import validate

KEEP = ["--set", "train.keep_checkpoints_every=20"]


def _eval(path):
    return json.loads(path.read_text())["eval"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 40-iteration run keeping every 20th checkpoint, and the same run stopped at 20."""
    root = tmp_path_factory.mktemp("kept")
    long, short = root / "long", root / "short"
    assert main(["train", str(SINUSOID), "--run-dir", str(long), *quick_args(40), *KEEP]) == 0
    assert main(["train", str(SINUSOID), "--run-dir", str(short), *quick_args(20)]) == 0
    return long, short


def test_a_kept_checkpoint_evaluates_as_the_run_stopped_there(runs, capsys):
    long, short = runs
    kept = sorted(p.name for p in (long / "checkpoints").glob("iteration-*.pt"))
    assert kept == ["iteration-20.pt", "iteration-40.pt"]  # 10, 30: periodic, not kept
    assert load_checkpoint(long / "checkpoints" / "iteration-20.pt")["iteration"] == 20
    assert main(["evaluate", str(long), "--checkpoint", "20"]) == 0
    assert "at iteration 20" in capsys.readouterr().out
    at_20 = _eval(long / "evaluations" / "test-20tasks-iteration-20.json")
    assert at_20 == json.loads((short / "summary.json").read_text())["eval"]
    assert at_20 != json.loads((long / "summary.json").read_text())["eval"]  # it trained on


def test_all_kept_checkpoints_give_a_learning_curve(runs, capsys):
    long, _ = runs
    assert main(["evaluate", str(long), "--checkpoint", "all"]) == 0
    out = capsys.readouterr().out
    assert "learning curve:" in out and "kept checkpoints" in out
    cells = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 2]
    assert [c for c in cells if c.isdigit()] == ["20", "40"]  # one row per kept checkpoint
    last = json.loads((long / "summary.json").read_text())["eval"]
    assert _eval(long / "evaluations" / "test-20tasks-iteration-40.json") == last
    assert (long / "evaluations" / "test-20tasks-by-iteration.png").stat().st_size > 10_000


def test_all_reads_back_a_checkpoint_already_evaluated(runs, capsys):
    """An evaluation saved by `--checkpoint N` is reused (a value written into it shows in the
    table); one that cannot be read is evaluated again and rewritten."""
    long, _ = runs
    assert main(["evaluate", str(long), "--checkpoint", "20"]) == 0
    saved = long / "evaluations" / "test-20tasks-iteration-20.json"
    record = json.loads(saved.read_text())
    record["eval"]["mean"][0] = 123456.0
    saved.write_text(json.dumps(record))
    (long / "evaluations" / "test-20tasks-iteration-40.json").write_text("{not json")
    capsys.readouterr()
    assert main(["evaluate", str(long), "--checkpoint", "all"]) == 0
    out = capsys.readouterr().out
    assert "1.235e+05" in out and "iterations 20: read back" in out
    last = json.loads((long / "summary.json").read_text())["eval"]
    assert _eval(long / "evaluations" / "test-20tasks-iteration-40.json") == last


@pytest.mark.parametrize(
    "checkpoint, message",
    [
        ("30", "has no checkpoint of iteration 30; it kept those of iterations 20, 40"),
        ("x", "--checkpoint takes an iteration N or 'all', got 'x'"),
    ],
)
def test_a_missing_or_malformed_checkpoint_is_one_line(runs, checkpoint, message, capsys):
    long, _ = runs
    assert main(["evaluate", str(long), "--checkpoint", checkpoint]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_run_that_kept_none_says_how_to_keep_them(runs, capsys):
    _, short = runs
    assert main(["evaluate", str(short), "--checkpoint", "all"]) == 2
    assert "train.keep_checkpoints_every=N" in capsys.readouterr().err
    assert main(["evaluate", str(short), "--checkpoint", "20"]) == 2
    assert "it kept none: train.keep_checkpoints_every keeps them" in capsys.readouterr().err


def test_kept_checkpoints_must_be_periodic_ones():
    data = {
        "domain": "fewshot",
        "task": {"name": "sinusoid"},
        "model": {"name": "mlp"},
        "algo": {"name": "maml"},
        "train": {"iterations": 10, "checkpoint_every": 4, "keep_checkpoints_every": 6},
    }
    with pytest.raises(Exception, match=r"keep_checkpoints_every \(6\) must be a multiple of"):
        validate(data)


def test_adapt_takes_a_kept_checkpoint(tmp_path, capsys):
    """A meta-RL run keeping every checkpoint: `adapt --checkpoint 1` adapts iteration 1's
    policy (recorded in the saved adaptation), not the last one."""
    from rich.console import Console

    from metarl.run.trainer import train

    config = validate(
        {
            "domain": "rl",
            "seed": 0,
            "env": {"id": "metarl/Navigation2D-v0", "horizon": 10},
            "policy": {"hidden_sizes": [8], "activation": "tanh"},
            "algo": {"name": "maml_trpo", "meta_batch_size": 2, "episodes_per_task": 2},
            "train": {"iterations": 2, "checkpoint_every": 1, "keep_checkpoints_every": 1},
            "eval": {"tasks": 2, "steps": 1, "episodes_per_task": 2},
        }
    )
    run = tmp_path / "run"
    train(config, run, console=Console(quiet=True))
    args = ["adapt", str(run), "--task", "goal=[0.2,0.3]", "--steps", "1", "--episodes", "2"]
    assert main([*args, "--checkpoint", "1"]) == 0
    (saved,) = (run / "adapted").glob("adapted-*.pt")
    assert load_checkpoint(saved)["iteration"] == 1
    assert main([*args, "--checkpoint", "5"]) == 2
    assert "kept those of iterations 1, 2" in capsys.readouterr().err
    # every kept checkpoint on the tasks of a file: one evaluation each, named by the file
    task_file = tmp_path / "goals.json"
    task_file.write_text(json.dumps({"tasks": [{"goal": [0.2, 0.3]}, {"goal": [-0.4, 0.1]}]}))
    assert main(["evaluate", str(run), "--checkpoint", "all", "--task-file", str(task_file)]) == 0
    for i in (1, 2):
        record = json.loads(
            (run / "evaluations" / f"test-2tasks-goals-iteration-{i}.json").read_text()
        )
        assert record["iteration"] == i and record["eval"]["tasks"][1]["goal"] == [-0.4, 0.1]
    assert (run / "evaluations" / "test-2tasks-goals-by-iteration.png").is_file()
