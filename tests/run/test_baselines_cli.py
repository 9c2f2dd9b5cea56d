"""``metarl baselines`` as a user runs it: trains, then collects, and writes the table and figure."""

from __future__ import annotations

import json

import yaml
from cli_helpers import run_cli

# a CI-sized Navigation2D meta config (small policy, horizon 50, 4 held-out tasks)
META = {
    "domain": "rl",
    "seed": 0,
    "train": {"iterations": 2, "num_threads": 1},
    "env": {"id": "metarl/Navigation2D-v0", "horizon": 50},
    "policy": {"hidden_sizes": [16, 16], "activation": "tanh"},
    "sampler": {"rescale_actions": True},
    "algo": {"name": "maml_trpo", "meta_batch_size": 4, "episodes_per_task": 4},
    "eval": {"tasks": 4, "steps": 1, "episodes_per_task": 4},
}
BUDGET = {"iterations": 1, "env_steps_per_iteration": 128, "num_envs": 2}


def write_configs(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "nav.yaml").write_text(yaml.safe_dump(META))
    baselines = {
        "meta_config": "meta/nav.yaml",
        "pretrained": {**BUDGET, "learner": "trpo", "kwargs": {"n_steps": 64}},
        "oracle": {**BUDGET, "learner": "ppo", "kwargs": {"n_steps": 64, "batch_size": 128}},
        "rl2": {  # two iterations, evaluated after the first: a learning curve's points
            **BUDGET,
            "iterations": 2,
            "eval_every": 1,
            "episodes_per_trial": 2,
            "kwargs": {"n_steps": 64, "batch_size": 128},
        },
        "test_inner_lrs": {"pretrained": [0.02], "random": [0.5]},
    }
    path = tmp_path / "baselines.yaml"
    path.write_text(yaml.safe_dump(baselines))
    return path


def test_baselines_train_then_collect_and_report(tmp_path):
    config = write_configs(tmp_path)
    maml = tmp_path / "maml"
    res = run_cli("train", str(tmp_path / "meta" / "nav.yaml"), "--run-dir", str(maml))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    res = run_cli("baselines", str(config), "--run-dir", str(out), "--maml", str(maml))
    assert res.returncode == 0, res.stderr
    for method in ("pretrained", "oracle", "rl2", "random"):
        assert (out / method / "summary.json").is_file(), method
    assert (out / "baselines.png").stat().st_size > 0
    table = (out / "baselines.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(rows) >= {"MAML", "pretrained", "oracle", "RL²", "random init"}
    assert not any(name.startswith("paper") for name in rows)  # the paper's task: 100 steps
    maml_mean = json.loads((maml / "summary.json").read_text())["eval"]["mean"]
    assert " / ".join(f"{v:.1f}" for v in maml_mean) in rows["MAML"]
    oracle = json.loads((out / "oracle" / "summary.json").read_text())
    assert oracle["env_steps"] == 128 and len(oracle["eval"]["mean"]) == 1
    assert len(json.loads((out / "rl2" / "summary.json").read_text())["eval"]["mean"]) == 2
    records = [
        json.loads(line) for line in (out / "rl2" / "metrics.jsonl").read_text().splitlines()
    ]
    mid = [r for r in records if "eval/return_step1" in r]
    # on the validation tasks after every iteration (eval_every: 1), the last one included; the
    # final evaluation on the test tasks in a row of its own, as in summary.json
    assert [r["iteration"] for r in mid] == [1, 2]
    assert mid[0]["train/env_steps"] == 128 and mid[1]["train/env_steps"] == 256
    (final,) = [r for r in records if "test/return_step1" in r]
    rl2_eval = json.loads((out / "rl2" / "summary.json").read_text())["eval"]
    assert final["iteration"] == 2 and final["train/env_steps"] == 256
    assert [final[f"test/return_step{s}"] for s in rl2_eval["steps"]] == rl2_eval["mean"]
    # the learning curve against env steps, as README shows it
    curve = tmp_path / "rl2_curve.png"
    res = run_cli(
        "plot",
        str(out / "rl2"),
        "--x",
        "train/env_steps",
        "--metric",
        "eval/return_step1",
        "--out",
        str(curve),
    )
    assert res.returncode == 0, res.stderr
    assert curve.stat().st_size > 0
    # the random-init baseline is MAML's evaluation of an untrained policy: two points
    random = json.loads((out / "random" / "summary.json").read_text())["eval"]["mean"]
    assert len(random) == 2
    # each baseline's own test step: a second evaluation of the same policy, saved as `metarl
    # evaluate --set` saves it; before any step (same tasks, same policy) it agrees, after one
    # step of another size it differs
    for method, label, lr in (("pretrained", "pretrained", 0.02), ("random", "random init", 0.5)):
        own = out / method / "evaluations" / f"test-4tasks-eval.inner_lrs=_{lr}_.json"
        record = json.loads(own.read_text())
        assert record["overrides"] == [f"eval.inner_lrs=[{lr}]"]
        base = json.loads((out / method / "summary.json").read_text())["eval"]["mean"]
        assert record["eval"]["mean"][0] == base[0] and record["eval"]["mean"][1] != base[1]
        assert (
            " / ".join(f"{v:.1f}" for v in record["eval"]["mean"])
            in rows[f"{label}, test steps {lr}"]
        )

    # collected again without retraining; one method per process, the others' runs still fill
    # the table
    stamps = {m: (out / m / "summary.json").stat().st_mtime_ns for m in ("pretrained", "rl2")}
    again = run_cli("baselines", str(config), "--run-dir", str(out), "--methods", "oracle")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("complete, collected") == 1
    assert stamps == {m: (out / m / "summary.json").stat().st_mtime_ns for m in stamps}
    rows = (out / "baselines.md").read_text()
    assert "| RL² |" in rows and "| random init |" in rows and "| MAML |" not in rows
    bad = run_cli("baselines", str(config), "--run-dir", str(out), "--methods", "oracel")
    assert bad.returncode == 2 and "unknown ['oracel']" in bad.stderr


def test_a_bad_baselines_config_is_one_line(tmp_path):
    config = write_configs(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["oracle"]["iteratons"] = 3
    config.write_text(yaml.safe_dump(data))
    res = run_cli("baselines", str(config), "--run-dir", str(tmp_path / "out"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "iteratons" in res.stderr, res.stderr
    data = {"meta_config": "nowhere.yaml"}
    config.write_text(yaml.safe_dump(data))
    res = run_cli("baselines", str(config), "--run-dir", str(tmp_path / "out"))
    assert res.returncode == 2 and "meta_config nowhere.yaml not found" in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_partial_budget_is_extended_and_another_seeds_run_dir_is_refused(tmp_path):
    config = write_configs(tmp_path)
    out = tmp_path / "out"
    args = ("baselines", str(config), "--run-dir", str(out), "--methods")
    # `--set rl2.iterations=1` changes the baselines config's rl2 section, not the meta config
    res = run_cli(*args, "rl2,random", "--set", "rl2.iterations=1")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "rl2" / "summary.json").read_text())
    assert summary["iterations"] == 1 and summary["env_steps"] == 128
    # the same command at the config's budget continues that run instead of collecting it
    res = run_cli(*args, "rl2")
    assert res.returncode == 0, res.stderr
    assert "extending it from 1 iterations" in res.stdout
    summary = json.loads((out / "rl2" / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["env_steps"] == 256
    # the pretrained policy's evaluation with its own test step is redone for the extended
    # policy, not collected from the shorter run's
    own = out / "pretrained" / "evaluations" / "test-4tasks-eval.inner_lrs=_0.02_.json"
    res = run_cli(*args, "pretrained")
    assert res.returncode == 0, res.stderr
    assert json.loads(own.read_text())["iteration"] == 1
    res = run_cli(*args, "pretrained", "--set", "pretrained.iterations=2")
    assert res.returncode == 0, res.stderr
    record = json.loads(own.read_text())
    assert record["iteration"] == 2
    row = " / ".join(f"{v:.1f}" for v in record["eval"]["mean"])
    assert f"| pretrained, test steps 0.02 | {row} | 256 |" in (out / "baselines.md").read_text()
    # and a shorter budget than the run has is refused
    res = run_cli(*args, "rl2", "--set", "rl2.iterations=1")
    assert res.returncode == 2 and "ran 2 iterations, more than the 1" in res.stderr
    # another seed in the same run directory: refused, naming the key, nothing touched
    stamps = {m: (out / m / "summary.json").stat().st_mtime_ns for m in ("rl2", "random")}
    for method in ("rl2", "random"):
        res = run_cli(*args, method, "--set", "seed=1")
        assert res.returncode == 2, res.stdout
        assert "seed: 0 there, 1 now" in res.stderr and "own --run-dir" in res.stderr, res.stderr
    assert stamps == {m: (out / m / "summary.json").stat().st_mtime_ns for m in stamps}
    # the paper's rows beside its own task (navigation as registered: 100 steps)
    h100 = tmp_path / "h100"
    res = run_cli(*args[:3], str(h100), "--methods", "random", "--set", "env.horizon=100")
    assert res.returncode == 0, res.stderr
    table = (h100 / "baselines.md").read_text()
    for row in ("paper: MAML", "paper: pretrained", "paper: random", "paper: oracle"):
        assert f"| {row} |" in table, table
    # a baseline the config does not train cannot be given a budget
    data = yaml.safe_load(config.read_text())
    del data["oracle"]
    config.write_text(yaml.safe_dump(data))
    res = run_cli(*args, "random", "--set", "oracle.iterations=2")
    assert res.returncode == 2 and "has no `oracle` section" in res.stderr, res.stderr
