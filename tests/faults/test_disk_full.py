"""A full disk mid-run, injected as ENOSPC: one error line (exit code 3) naming the intact
checkpoint, nothing earlier lost, and ``--resume`` continues once space is back."""

from __future__ import annotations

import errno

import pytest
from fault_runs import ARGS, SINUSOID, finish_and_check

from metarl.cli import main
from metarl.run import metrics, trainer
from metarl.run.metrics import read_metrics


def _enospc(path: str) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path)


def test_disk_full_while_checkpointing(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = trainer.save_checkpoint
    calls = []

    def save(state, path):
        calls.append(state["iteration"])
        if state["iteration"] == 20:  # the second checkpoint finds the disk full
            raise _enospc(str(path))
        return real(state, path)

    monkeypatch.setattr(trainer, "save_checkpoint", save)
    assert main(["train", str(SINUSOID), "--run-dir", str(run), *ARGS]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left on the device")
    assert "the checkpoint of iteration 10" in err[0] and "--resume" in err[0]
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    finish_and_check(run, capsys)


def test_disk_full_mid_row_leaves_a_torn_line_that_resume_drops(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = metrics.MetricsLog.log

    def log(self, iteration, values):
        if iteration == 25 and not values.get("eval"):  # half a row, then the disk is full
            self._file.write('{"iteration": 25, "train/')
            self._file.flush()
            raise _enospc(str(self.path))
        return real(self, iteration, values)

    monkeypatch.setattr(metrics.MetricsLog, "log", log)
    assert main(["train", str(SINUSOID), "--run-dir", str(run), *ARGS]) == 3
    err = capsys.readouterr().err
    assert "no space left" in err and "the checkpoint of iteration 20" in err
    assert [r["iteration"] for r in read_metrics(run)] == [5, 10, 15, 20]  # torn row dropped
    monkeypatch.setattr(metrics.MetricsLog, "log", real)
    finish_and_check(run, capsys)


def test_other_os_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(
        trainer, "save_checkpoint", lambda state, path: (_ for _ in ()).throw(PermissionError())
    )
    with pytest.raises(PermissionError):
        main(["train", str(SINUSOID), "--run-dir", str(tmp_path / "run"), *ARGS])


def test_a_machine_fault_is_one_line_with_exit_code_3(monkeypatch, capsys):
    from metarl.faults import EnvironmentFault

    def fail(*args, **kwargs):
        raise EnvironmentFault("sampler worker 0 (pid 1) died (killed by SIGKILL) while ...")

    monkeypatch.setattr(trainer, "train", fail)
    assert main(["train", str(SINUSOID), "--run-dir", "unused", "--iterations", "1"]) == 3
    assert capsys.readouterr().err == (
        "error: sampler worker 0 (pid 1) died (killed by SIGKILL) while ...\n"
    )


def test_checkpoint_write_on_a_full_disk_raises_enospc_and_keeps_the_old_file(
    tmp_path, monkeypatch
):
    """torch.save straight into a full file raises a RuntimeError ("unexpected pos", found on a
    600 kB tmpfs); serialising in memory first makes the failure the write's OSError(ENOSPC),
    and the previous checkpoint stays whole."""
    import os

    import torch

    from metarl.run import checkpoint

    path = tmp_path / "last.pt"
    checkpoint.save_checkpoint({"iteration": 1, "experiment": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    class FullFile:
        def __init__(self, fd):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise _enospc(None)

    monkeypatch.setattr(checkpoint.os, "fdopen", lambda fd, mode: FullFile(fd))
    with pytest.raises(OSError) as info:
        checkpoint.save_checkpoint({"iteration": 2, "experiment": {"w": torch.zeros(3)}}, path)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_a_dead_worker_during_training_names_the_checkpoint_to_resume_from(
    tmp_path, monkeypatch, capsys
):
    from metarl.faults import EnvironmentFault

    def fail(*args, **kwargs):
        raise EnvironmentFault("sampler worker 0 (pid 1) died (killed by SIGKILL)")

    monkeypatch.setattr(trainer, "_train", fail)
    run = tmp_path / "run"
    assert main(["train", str(SINUSOID), "--run-dir", str(run), "--iterations", "1"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: sampler worker 0 (pid 1) died (killed by SIGKILL); no checkpoint had been "
        "written yet: start the run again"
    ]
