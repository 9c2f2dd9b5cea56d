"""The CLI as a user runs it: exit codes, the run directory, determinism, kill and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import QUICK, SINUSOID, quick_args, run_cli, terminal_sigint
from PIL import Image

from metarl.run.metrics import read_metrics

IGNORED = ("time/", "perf/")


def _learning_rows(run_dir):
    return [
        {k: v for k, v in row.items() if not k.startswith(IGNORED)} for row in read_metrics(run_dir)
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One quick run, trained once; tests that change it work on a copy."""
    run = tmp_path_factory.mktemp("trained") / "run"
    res = run_cli("train", str(SINUSOID), "--run-dir", str(run), *QUICK)
    assert res.returncode == 0, res.stderr
    return run


@pytest.fixture
def run_copy(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_train_writes_a_complete_run_directory(trained):
    run = trained
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.pt",
        "adaptation_curve.png",
        "sinusoid_fit.png",
    ):
        assert (run / name).exists(), name
    assert any((run / "tensorboard").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    ev = summary["eval"]
    assert ev["metric"] == "mse" and ev["steps"] == [0, 1, 2] and ev["num_tasks"] == 20
    assert len(ev["mean"]) == len(ev["ci95"]) == 3
    # one inner step on the support set lowers the held-out MSE, even after 40 iterations
    assert ev["mean"][1] < ev["mean"][0]
    # the resolved config records the overrides
    assert "iterations: 40" in (run / "config.yaml").read_text()
    # what computed it: this checkout's commit and this process's torch and CPU kernels
    lines = (run / "provenance.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["iteration"] == 0
    made = summary["provenance"]
    assert made["packages"]["torch"] == torch.__version__
    assert made["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    here = Path(__file__).parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here)
    if head.returncode == 0:  # a checkout (CI's clean clone is one)
        assert made["commit"].removesuffix("+dirty") == head.stdout.strip()
    # the checkpoint loads with weights_only=True (plain tensors and data)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["iteration"] == 40


def test_same_seed_same_metrics_and_another_seed_differs(trained, tmp_path):
    rows = [_learning_rows(trained)]  # seed 0
    for name, seed in (("b", "0"), ("c", "4")):
        res = run_cli(
            "train", str(SINUSOID), "--run-dir", str(tmp_path / name), "--seed", seed, *QUICK
        )
        assert res.returncode == 0, res.stderr
        rows.append(_learning_rows(tmp_path / name))
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("algo.inner_lrr=0.1", "unknown key `algo.inner_lrr`; did you mean `inner_lr`?"),
        ("algo.inner_lr=fast", "`algo.inner_lr` = 'fast'"),
        ("algo.outer_lr=-0.001", "`algo.outer_lr` = -0.001"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path, override, expected):
    res = run_cli("train", str(SINUSOID), "--run-dir", str(tmp_path / "r"), "--set", override)
    assert res.returncode == 2
    assert expected in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing created for a rejected config


def test_missing_dataset_says_where_it_looked_and_leaves_no_run(tmp_path):
    config = SINUSOID.parent / "omniglot_5w1s_maml.yaml"
    run = tmp_path / "run"
    res = run_cli(
        "train", str(config), "--run-dir", str(run), env={"METARL_DATA": str(tmp_path / "nowhere")}
    )
    assert res.returncode == 2, res.stderr
    assert "omniglot not found" in res.stderr and str(tmp_path / "nowhere") in res.stderr
    assert "METARL_DATA" in res.stderr  # how to provide it
    assert not run.exists()


def test_missing_config_file_exit_2(tmp_path):
    res = run_cli("train", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "config file not found" in res.stderr


def test_existing_run_is_never_overwritten(run_copy):
    run = run_copy
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = run_cli("train", str(SINUSOID), "--run-dir", str(run), *QUICK)
    assert res.returncode == 2 and "already holds a run" in res.stderr
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_truncated_checkpoint_is_reported_and_nothing_is_lost(run_copy):
    run = run_copy
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args in (("train", "--resume", str(run)), ("evaluate", str(run))):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert "unreadable" in res.stderr and "truncated or corrupt" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


class _Payload:
    """Pickled into a hostile checkpoint: unpickling it would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_holding_code_is_refused_as_such_and_never_runs(run_copy, tmp_path):
    run = run_copy
    ckpt = run / "checkpoints" / "last.pt"
    marker = tmp_path / "payload_ran"
    state = torch.load(ckpt, weights_only=True)
    state["experiment"]["payload"] = _Payload(marker)
    torch.save(state, ckpt)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args in (("train", "--resume", str(run)), ("evaluate", str(run))):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert "was refused: it holds pickled Python objects" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resuming_a_finished_run_says_it_is_complete(run_copy):
    run = run_copy
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = run_cli("train", "--resume", str(run))
    assert res.returncode == 2
    assert "is complete" in res.stderr and "--iterations" in res.stderr
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resume_may_change_bookkeeping_and_still_matches_an_uninterrupted_run(trained, tmp_path):
    """Half a run, then `--resume --iterations 40 --set train.keep_checkpoints_every=20`: the
    checkpoints are kept from there on, the config records it, and the learning rows and final
    evaluation equal the uninterrupted 40-iteration run's."""
    run = tmp_path / "half"
    res = run_cli("train", str(SINUSOID), "--run-dir", str(run), *quick_args(iterations=20))
    assert res.returncode == 0, res.stderr
    res = run_cli(
        "train", "--resume", str(run), "--iterations", "40",
        "--set", "train.keep_checkpoints_every=20", "--set", "train.log_every=5",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "keep_checkpoints_every: 20" in (run / "config.yaml").read_text()
    starts = [json.loads(line) for line in (run / "provenance.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in starts] == [0, 20]  # the start and the resume
    kept = sorted(p.name for p in (run / "checkpoints").glob("iteration-*.pt"))
    assert kept == ["iteration-40.pt"]  # iteration 20 was checkpointed before the change
    rows = _learning_rows(run)  # the half run's own final evaluation stays in its log
    half_eval = [r for r in rows if r["iteration"] == 20 and any(k.startswith("test/") for k in r)]
    assert len(half_eval) == 1
    rows.remove(half_eval[0])
    assert rows == _learning_rows(trained)
    summary = json.loads((run / "summary.json").read_text())["eval"]
    assert summary == json.loads((trained / "summary.json").read_text())["eval"]


def test_resume_refuses_to_change_what_the_run_learns(run_copy):
    run = run_copy
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = run_cli("train", "--resume", str(run), "--iterations", "41", "--set", "algo.inner.lr=0.5")
    assert res.returncode == 2
    assert "--set algo.inner.lr=0.5" in res.stderr
    assert "train.keep_checkpoints_every" in res.stderr and "start a new run" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_checkpoint_of_another_model_is_reported_and_nothing_is_lost(run_copy):
    """A readable checkpoint whose weights do not fit the run's config (here: a layer's weight
    with the wrong shape) fails every command that loads it with one line naming it."""
    run = run_copy
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    learner = state["experiment"]["learner"]
    first = next(iter(learner))
    learner[first] = torch.zeros(3, 3)
    torch.save(state, ckpt)

    def files():  # .lock only holds the pid of whoever last took the lock
        return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}

    before = files()
    resume = ("train", "--resume", str(run), "--iterations", "41")  # the run itself is complete
    for args in (resume, ("evaluate", str(run))):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert f"checkpoint {ckpt} does not match the run's config" in res.stderr
        assert "size mismatch" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert before == files()


def test_run_dir_without_checkpoint(tmp_path):
    res = run_cli("evaluate", str(tmp_path))
    assert res.returncode == 2 and "not a metarl run directory" in res.stderr


LONG = quick_args(iterations=2000, log_every=50, checkpoint_every=50)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The long run the kill and stop tests interrupt, trained without interruption."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert run_cli("train", str(SINUSOID), "--run-dir", str(run), *LONG).returncode == 0
    return run


def _train_in_background(run_dir: Path, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "metarl.cli", "train", str(SINUSOID), "--run-dir", str(run_dir)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with terminal_sigint():  # the child sees SIGINT as from a terminal
        return subprocess.Popen(
            [*cmd, *LONG], env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )


def _wait_until(proc: subprocess.Popen, reached) -> None:
    deadline = time.time() + 240
    while not reached():
        if proc.poll() is not None:
            pytest.fail("the training process ended before it could be stopped")
        if time.time() > deadline:
            pytest.fail("the training process made no progress in 240 s")
        time.sleep(0.05)


def _same_as_uninterrupted(run: Path, uninterrupted: Path) -> None:
    assert _learning_rows(run) == _learning_rows(uninterrupted)
    a = json.loads((uninterrupted / "summary.json").read_text())["eval"]
    assert json.loads((run / "summary.json").read_text())["eval"] == a


def test_resume_after_sigkill_matches_an_uninterrupted_run(uninterrupted, tmp_path):
    """Kill a real training process with SIGKILL mid-run, resume it, and compare with a run that
    was never interrupted: same learning metrics row for row, same final evaluation."""
    killed = tmp_path / "killed"
    proc = _train_in_background(killed)
    ckpt = killed / "checkpoints" / "last.pt"
    _wait_until(
        proc, lambda: ckpt.exists() and torch.load(ckpt, weights_only=True)["iteration"] >= 100
    )
    # while it trains, a second process on the same run is refused and changes nothing
    before = (killed / "config.yaml").read_bytes()
    res = run_cli("train", "--resume", str(killed))
    assert res.returncode == 2 and "being trained right now" in res.stderr, res.stderr
    assert (killed / "config.yaml").read_bytes() == before
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = torch.load(ckpt, weights_only=True)["iteration"]
    assert 100 <= at_kill < 2000
    assert not (killed / "summary.json").exists()

    res = run_cli("train", "--resume", str(killed))
    assert res.returncode == 0, res.stderr
    assert f"from iteration {at_kill}" in res.stdout
    _same_as_uninterrupted(killed, uninterrupted)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_after_the_iteration_and_checkpoints_it(uninterrupted, tmp_path, sig):
    """SIGTERM (a scheduler's warning) or SIGINT (Ctrl-C) mid-run: the process finishes its
    iteration, checkpoints it (between the periodic checkpoints, so nothing trained is lost),
    exits with 128 + the signal's number and one line saying how to continue; the resumed run
    equals the uninterrupted one."""
    run = tmp_path / "stopped"
    proc = _train_in_background(run, stderr=subprocess.PIPE)
    metrics = run / "metrics.jsonl"

    def rows() -> list[int]:
        text = metrics.read_text() if metrics.exists() else ""
        return [json.loads(line)["iteration"] for line in text.splitlines() if line.endswith("}")]

    _wait_until(proc, lambda: any(i >= 100 for i in rows()))
    logged = max(rows())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    stopped_at = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"]
    assert logged <= stopped_at < 2000
    name = signal.Signals(sig).name
    print(err)  # pytest shows captured output whole when an assertion below fails
    assert f"{name}: stopping once this iteration is done" in err
    assert f"stopped on {name} at iteration {stopped_at} of {run}, checkpointed" in err
    assert f"metarl train --resume {run}" in err
    assert not (run / "summary.json").exists()

    res = run_cli("train", "--resume", str(run))
    assert res.returncode == 0, res.stderr
    assert f"from iteration {stopped_at}" in res.stdout
    _same_as_uninterrupted(run, uninterrupted)


def test_plot_writes_learning_curves_of_a_real_run(trained, tmp_path):
    out = tmp_path / "curves" / "loss.png"
    res = run_cli(
        "plot", str(trained), str(trained), "--metric", "train/loss", "--smooth", "3",
        "--label", "a", "--label", "b", "--reference", "paper=0.5", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 300
    # several metrics of one run in one figure
    out2 = tmp_path / "two.png"
    res = run_cli(
        "plot", str(trained), "--metric", "train/loss", "--metric", "time/step_s",
        "--out", str(out2),
    )  # fmt: skip
    assert res.returncode == 0 and out2.is_file(), res.stderr


def test_plot_bad_input_is_one_line_and_exit_2(trained, tmp_path):
    out = str(tmp_path / "x.png")
    cases = [
        (["plot", str(trained), "--metric", "nope", "--out", out], "train/loss"),
        (["plot", str(tmp_path), "--out", out], "no metrics.jsonl"),
        (["plot", str(trained), "--label", "a", "--label", "b", "--out", out], "one per run"),
        (["plot", str(trained), "--reference", "paper", "--out", out], "LABEL=NUMBER"),
    ]
    for args, expected in cases:
        res = run_cli(*args)
        assert res.returncode == 2 and expected in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert not Path(out).exists()


def test_evaluate_under_changed_settings_saves_apart_and_refuses_model_keys(run_copy):
    base = run_cli("evaluate", str(run_copy), "--tasks", "8")
    fewer = run_cli("evaluate", str(run_copy), "--tasks", "8", "--set", "task.shots=2")
    assert base.returncode == 0 and fewer.returncode == 0, fewer.stderr
    assert "task.shots=2" in fewer.stdout
    runs = run_copy / "evaluations"
    plain = json.loads((runs / "test-8tasks.json").read_text())
    changed = json.loads((runs / "test-8tasks-task.shots=2.json").read_text())
    assert changed["overrides"] == ["task.shots=2"] and "overrides" not in plain
    # two support examples instead of ten adapt worse on the same held-out tasks
    assert changed["eval"]["mean"][1] > plain["eval"]["mean"][1]
    assert "shots: 10" in (run_copy / "config.yaml").read_text()  # the run itself unchanged
    res = run_cli("evaluate", str(run_copy), "--set", "model.hidden_sizes=[8]")
    assert res.returncode == 2 and "only keys under env, task, eval" in res.stderr


def test_mid_run_evaluations_are_one_split_and_the_final_test_row_is_the_summary(tmp_path):
    """``eval/...`` rows are the validation tasks every ``eval_every`` iterations, the last one
    included (what ``metarl evaluate --split val`` gives the final weights); the final test
    evaluation is the ``test/...`` row, equal to summary.json's."""
    run = tmp_path / "run"
    res = run_cli(
        "train", str(SINUSOID), "--run-dir", str(run), *quick_args(iterations=20),
        "--set", "train.eval_every=10",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = read_metrics(run)
    val = [r for r in rows if "eval/mse_step1" in r]
    (test,) = [r for r in rows if "test/mse_step1" in r]
    assert [r["iteration"] for r in val] == [10, 20] and test["iteration"] == 20
    summary = json.loads((run / "summary.json").read_text())["eval"]["mean"]
    assert [test[f"test/mse_step{s}"] for s in range(3)] == pytest.approx(summary, rel=1e-6)
    res = run_cli("evaluate", str(run), "--split", "val", "--tasks", "20")
    assert res.returncode == 0, res.stderr
    again = json.loads((run / "evaluations" / "val-20tasks.json").read_text())["eval"]["mean"]
    assert [val[-1][f"eval/mse_step{s}"] for s in range(3)] == pytest.approx(again, rel=1e-6)
    assert again != pytest.approx(summary, rel=1e-3)  # another split: other tasks


def test_a_task_file_is_refused_for_a_few_shot_run(trained, tmp_path):
    """Few-shot runs draw their own test episodes; a meta-RL task list is refused by name."""
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps([{"velocity": 1.0}]))
    res = run_cli("evaluate", str(trained), "--task-file", str(tasks))
    assert res.returncode == 2 and "--task-file lists meta-RL tasks" in res.stderr, res.stderr
    assert not (trained / "evaluations" / "test-1tasks-tasks.json").exists()
