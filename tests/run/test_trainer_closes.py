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
