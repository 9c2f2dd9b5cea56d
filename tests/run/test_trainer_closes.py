"""Commands close what the experiment opened (sampler worker processes), even when they fail."""

from __future__ import annotations

import pytest

from metarl.run import trainer


class _Experiment:
    closed = False

    def load_state_dict(self, state):
        pass

    def evaluate(self, tasks, split):
        raise RuntimeError("evaluation failed")

    def close(self):
        self.closed = True


def test_evaluate_closes_the_experiment_when_it_fails(monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(
        trainer, "build_experiment", lambda config: made.append(_Experiment()) or made[-1]
    )
    monkeypatch.setattr(trainer, "load_checkpoint", lambda path: {"experiment": {}, "iteration": 1})
    with pytest.raises(RuntimeError, match="evaluation failed"):
        trainer.evaluate_run(tmp_path, object(), "test", 3)
    assert made and made[0].closed


def test_experiments_without_close_are_fine(monkeypatch):
    class Plain:
        pass

    monkeypatch.setattr(trainer, "build_experiment", lambda config: Plain())
    with trainer.opened_experiment(object()) as exp:
        assert isinstance(exp, Plain)


def test_curve_table_names_an_rl2_runs_points_trial_episodes():
    """An RL² curve's points are the episodes 1..K of a trial, not inner steps 0..K-1."""
    from types import SimpleNamespace

    from rich.console import Console

    from metarl.core.curve_summary import AdaptationCurve

    curve = AdaptationCurve(
        "return", [0, 1], [-10.0, -4.0], [1.0, 1.0], [0.5, 0.5], 8, [-10, -4], [0.0, 0.25]
    )

    def text(config):
        console = Console(record=True, width=200)
        console.print(trainer.curve_table(curve, "t", config))
        return console.export_text()

    rl2 = text(SimpleNamespace(algo=SimpleNamespace(method="rl2")))
    assert "gain vs episode 1" in rl2 and "step" not in rl2
    rows = [line.split("│")[1].strip() for line in rl2.splitlines() if "-4" in line]
    assert rows == ["episode 2"]  # the second episode, not step 1
    maml = text(SimpleNamespace(algo=SimpleNamespace(name="maml_trpo")))
    rows = [line.split("│")[1].strip() for line in maml.splitlines() if "-4" in line]
    assert "gain vs 0 steps" in maml and rows == ["1 step"]
