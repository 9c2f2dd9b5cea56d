"""``metarl compare``: grouping by config, the aggregates against hand-computed values, errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from metarl.cli import main
from metarl.rl import RLConfig
from metarl.run.compare import compare_runs, group_runs, load_run
from metarl.run.config import dump_config
from metarl.run.errors import UserError


def _fake_run(
    root: Path,
    name: str,
    seed: int,
    curve: list[float],
    activation="tanh",
    gain_stderr=None,
    train=None,
    algo=None,
) -> Path:
    """A finished run directory as `metarl train` leaves it (config.yaml, summary.json)."""
    cfg = RLConfig.model_validate(
        {
            "seed": seed,
            "train": {"iterations": 5, **(train or {})},
            "env": {"id": "metarl/Navigation2D-v0"},
            "policy": {"activation": activation},
            **({"algo": algo} if algo else {}),
        }
    )
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(cfg))
    summary = {
        "seed": seed,
        "env_id": cfg.env.id,
        "eval": {
            "metric": "return",
            "steps": list(range(len(curve))),
            "mean": curve,
            "ci95": [1.0] * len(curve),
            "stderr": [0.5] * len(curve),
            "num_tasks": 40,
        },
    }
    if gain_stderr is not None:
        summary["eval"]["gain_stderr"] = gain_stderr
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_aggregates_match_their_definitions(tmp_path):
    one_step = [1.0, 2.0, 3.0, 4.0, 100.0]  # an outlier seed
    runs = [_fake_run(tmp_path, f"s{i}", i, [-50.0 + i, v]) for i, v in enumerate(one_step)]
    (group,) = compare_runs(runs, reps=500)
    assert [r.seed for r in group.runs] == [0, 1, 2, 3, 4]
    assert group.mean[1] == pytest.approx(22.0)
    assert group.std[1] == pytest.approx(np.std(one_step, ddof=1))
    assert group.median[1] == 3.0
    # IQM of 5 runs: drop the lowest and the highest, average the middle 3
    assert group.iqm[1] == pytest.approx(3.0)
    assert group.iqm[0] == pytest.approx(-48.0)
    lo, hi = group.iqm_ci[1]
    assert 1.0 <= lo <= 3.0 <= hi <= 100.0 and lo < hi
    # the bootstrap is seeded: the same runs give the same interval
    assert compare_runs(runs, reps=500)[0].iqm_ci == group.iqm_ci


def test_groups_by_config_apart_from_seeds_and_by_a_key(tmp_path):
    runs = [_fake_run(tmp_path, f"t{i}", i, [0.0, 1.0]) for i in range(2)]
    runs += [_fake_run(tmp_path, f"r{i}", i, [0.0, 2.0], "relu") for i in range(3)]
    groups = group_runs([load_run(r) for r in runs])
    assert {k: len(v) for k, v in groups.items()} == {
        "policy.activation=tanh": 2,
        "policy.activation=relu": 3,
    }
    # how a run was logged, checkpointed or threaded does not split a group
    kept = _fake_run(
        tmp_path,
        "t2",
        2,
        [0.0, 1.5],
        train={"checkpoint_every": 5, "keep_checkpoints_every": 5, "num_threads": 1},
    )
    groups = group_runs([load_run(r) for r in (*runs, kept)])
    assert {k: len(v) for k, v in groups.items()} == {
        "policy.activation=tanh": 3,
        "policy.activation=relu": 3,
    }
    by_seed = group_runs([load_run(r) for r in runs], "seed")
    assert sorted(by_seed) == ["seed=0", "seed=1", "seed=2"]
    with pytest.raises(UserError, match="not a config key"):
        group_runs([load_run(r) for r in runs], "policy.nonsense")


def test_groups_of_different_learners_are_labelled_by_the_learner(tmp_path):
    """Keys only one learner has are no difference between learners; a key in which two
    groups of the same learner differ is."""
    promp = {"name": "promp", "clip_eps": 0.3}
    runs = [_fake_run(tmp_path, f"m{i}", i, [0.0, 1.0]) for i in range(2)]
    runs += [_fake_run(tmp_path, f"p{i}", i, [0.0, 2.0], algo=promp) for i in range(2)]
    runs += [
        _fake_run(tmp_path, "q0", 0, [0.0, 2.0], algo={**promp, "clip_eps": 0.2}, activation="relu")
    ]
    labels = list(group_runs([load_run(r) for r in runs]))
    assert labels == [
        "algo.name=maml_trpo, policy.activation=tanh",
        "algo.clip_eps=0.3, algo.name=promp, policy.activation=tanh",
        "algo.clip_eps=0.2, algo.name=promp, policy.activation=relu",
    ]


def test_unfinished_or_broken_runs_are_named(tmp_path):
    run = _fake_run(tmp_path, "a", 0, [0.0, 1.0])
    (run / "summary.json").unlink()
    with pytest.raises(UserError, match="has not finished"):
        compare_runs([run])
    (run / "summary.json").write_text("{not json")
    with pytest.raises(UserError, match="not a metarl summary"):
        compare_runs([run])


def test_cli_prints_tables_and_writes_plot_and_json(tmp_path, capsys):
    runs = [str(_fake_run(tmp_path, f"s{i}", i, [-40.0 + i, -12.0 + i])) for i in range(3)]
    out, js = tmp_path / "cmp.png", tmp_path / "cmp.json"
    assert main(["compare", *runs, "--out", str(out), "--json", str(js), "--reps", "300"]) == 0
    text = capsys.readouterr().out
    assert "group 1: metarl/Navigation2D-v0 (3 runs, seeds 0, 1, 2)" in text
    assert "-11.0 ± 1.0" in text  # 1 step: mean -11 and s.d. 1 over the three seeds
    data = json.loads(js.read_text())
    assert data[0]["seeds"] == [0, 1, 2] and data[0]["iqm"][1] == pytest.approx(-11.0)
    assert out.stat().st_size > 10_000
    assert main(["compare", *runs, "--markdown", "--reps", "300"]) == 0
    text = capsys.readouterr().out
    assert "| 1 | s1 | 1 | 40 | -39.0 ± 0.5 | -11.0 ± 0.5 | - |" in text  # no paired error
    assert "| 1: mean ± s.d. | 3 | -39.0 ± 1.0 | -11.0 ± 1.0 |" in text
    assert main(["compare", str(tmp_path / "missing")]) == 2


def test_the_one_step_gain_shows_its_paired_standard_error(tmp_path, capsys):
    run = _fake_run(tmp_path, "s0", 0, [-40.0, -12.5, -10.0], gain_stderr=[0.0, 0.25, 0.5])
    assert main(["compare", str(run), "--markdown", "--reps", "100"]) == 0
    text = capsys.readouterr().out
    assert "| 1-step gain (paired s.e.) |" in text
    assert "| -40.0 ± 0.5 | -12.5 ± 0.5 | -10.0 ± 0.5 | +27.5 ± 0.2 |" in text


def test_an_older_summary_takes_the_paired_errors_of_its_exact_re_evaluation(tmp_path, capsys):
    curve = [-40.0, -12.5]
    run = _fake_run(tmp_path, "s0", 0, curve)  # a summary without gain_stderr
    summary = json.loads((run / "summary.json").read_text())
    summary["iterations"] = 5
    (run / "summary.json").write_text(json.dumps(summary))
    again = {"iteration": 5, "split": "test", "eval": {**summary["eval"], "gain_stderr": [0, 1.5]}}
    (run / "evaluations").mkdir()
    path = run / "evaluations" / "test-40tasks.json"
    path.write_text(json.dumps(again))
    assert load_run(run).gain() == "+27.5 ± 1.5"
    # a re-evaluation that does not reproduce the summary (another checkpoint) is not used
    again["eval"]["mean"] = [-40.0, -12.4]
    path.write_text(json.dumps(again))
    assert load_run(run).gain() == "-"
    path.write_text("{torn")
    assert load_run(run).gain() == "-"


def test_evaluation_compares_each_runs_re_evaluation_on_named_tasks(tmp_path, capsys):
    """`--evaluation NAME`: every run's evaluations/NAME.json (e.g. a paper's test tasks), not
    its summary; a run without it is named with the evaluations it has."""
    runs = []
    for seed, one_step in enumerate((30.0, 50.0, 100.0)):
        run = _fake_run(tmp_path, f"s{seed}", seed, [0.0, -5.0])  # its own held-out draw
        again = {
            "iteration": 5,
            "split": "test",
            "task_file": "paper_tasks.json",
            "eval": {
                "metric": "return",
                "steps": [0, 1],
                "mean": [10.0 + seed, one_step],
                "ci95": [2.0, 2.0],
                "stderr": [1.0, 1.0],
                "gain_stderr": [0.0, 4.0],
                "num_tasks": 20,
            },
        }
        (run / "evaluations").mkdir()
        (run / "evaluations" / "test-20tasks-paper_tasks.json").write_text(json.dumps(again))
        runs.append(str(run))
    (group,) = compare_runs(
        [Path(r) for r in runs], reps=200, evaluation="test-20tasks-paper_tasks"
    )
    assert [r.num_tasks for r in group.runs] == [20, 20, 20]
    assert group.median == [11.0, 50.0] and group.mean[1] == pytest.approx(60.0)
    assert [r.gain() for r in group.runs] == ["+20.0 ± 4.0", "+39.0 ± 4.0", "+88.0 ± 4.0"]
    argv = ["compare", *runs, "--evaluation", "test-20tasks-paper_tasks.json", "--markdown"]
    assert main([*argv, "--reps", "200"]) == 0
    text = capsys.readouterr().out
    assert "| 1 | s1 | 1 | 20 | 11.0 ± 1.0 | 50.0 ± 1.0 | +39.0 ± 4.0 |" in text
    assert "note:" not in text  # every evaluation is of the run's last iteration (5 of 5)
    # one evaluated before its run was continued: said, not mixed in silently
    stale = Path(runs[2]) / "evaluations" / "test-20tasks-paper_tasks.json"
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "iteration": 3}))
    assert main([*argv, "--reps", "200"]) == 0
    assert "note: s2 is scored at iteration 3 of its 5" in capsys.readouterr().out
    assert main(["compare", *runs, "--evaluation", "test-40tasks"]) == 2
    error = capsys.readouterr().err
    assert "s0 has no evaluation test-40tasks.json" in error
    assert "its evaluations: test-20tasks-paper_tasks" in error


def test_rl2_runs_are_named_by_path_and_their_points_are_trial_episodes(tmp_path, capsys):
    """Baseline runs share their directory's name (``DIR/rl2``): each is named by as much of
    its path as tells it apart; an RL² curve's points are a trial's episodes, not steps."""
    from metarl.run.baselines import BaselineBudget, method_config
    from metarl.run.rundir import load_run_config

    budget = BaselineBudget(iterations=1, env_steps_per_iteration=128, episodes_per_trial=2)
    runs = []
    for seed in (0, 1):
        run = _fake_run(tmp_path / f"seed{seed}", "rl2", seed, [10.0 + seed, 12.0 + seed])
        rl2 = method_config(load_run_config(run), "rl2", budget)
        (run / "config.yaml").write_text(dump_config(rl2))
        runs.append(str(run))
    assert main(["compare", *runs, "--markdown", "--reps", "100"]) == 0
    text = capsys.readouterr().out
    assert (
        "| group | run | seed | tasks | episode 1 | episode 2 | episode 2 - 1 (paired s.e.) |"
        in text
    )
    assert "| 1 | seed1/rl2 | 1 | 40 | 11.0 ± 0.5 | 13.0 ± 0.5 | - |" in text
    # beside a MAML run, the columns say both
    maml = _fake_run(tmp_path, "maml", 0, [-40.0, -12.0])
    assert main(["compare", runs[0], str(maml), "--markdown", "--reps", "100"]) == 0
    assert "| 0 steps (RL²: episode 1) | 1 step (RL²: episode 2) |" in capsys.readouterr().out
