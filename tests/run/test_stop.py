"""The signal handling behind a clean stop, in this process: the first signal only asks, the
second interrupts, an ignored SIGINT stays ignored, and the previous handlers come back."""

from __future__ import annotations

import os
import signal

import pytest
from cli_helpers import terminal_sigint

from metarl.run.stop import RunStopped, stop_after_iteration


def test_first_signal_asks_second_interrupts_and_handlers_come_back(capsys):
    with terminal_sigint():  # also when the suite runs from `cmd &` (SIGINT ignored)
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        with stop_after_iteration() as stop:
            assert stop.signal_name is None
            os.kill(os.getpid(), signal.SIGTERM)  # delivered before the next bytecode
            assert stop.signal_name == "SIGTERM"
            assert "SIGTERM: stopping once this iteration is done" in capsys.readouterr().err
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert {s: signal.getsignal(s) for s in before} == before


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for `cmd &` from a script
    try:
        with stop_after_iteration() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.signal_name is None
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_run_stopped_names_the_resume_command_and_the_shell_exit_code(tmp_path):
    e = RunStopped(tmp_path / "run", 37, "SIGTERM")
    assert isinstance(e, KeyboardInterrupt)  # stops `metarl baselines` as a whole
    assert str(e) == (
        f"stopped on SIGTERM at iteration 37 of {tmp_path / 'run'}, checkpointed; continue "
        f"with `metarl train --resume {tmp_path / 'run'}`"
    )
    assert e.exit_code == 143 and RunStopped(tmp_path, 1, "SIGINT").exit_code == 130


def test_baselines_stopped_says_to_rerun_the_same_command(tmp_path, monkeypatch, capsys):
    """`metarl baselines` trains several runs in a row: a stop ends the command, and the way on
    is the same command (it resumes the stopped run, then trains the rest)."""
    from metarl.cli import main
    from metarl.run import baselines

    def stopped(*args, **kwargs):
        raise RunStopped(tmp_path / "pretrained", 12, "SIGTERM")

    monkeypatch.setattr(baselines, "run_baselines", stopped)
    config = tmp_path / "b.yaml"
    config.write_text("{}\n")
    assert main(["baselines", str(config)]) == 143
    err = capsys.readouterr().err.strip()
    assert err == (
        f"stopped on SIGTERM at iteration 12 of {tmp_path / 'pretrained'}, checkpointed; "
        "continue with the same `metarl baselines` command (it resumes unfinished runs)"
    )
