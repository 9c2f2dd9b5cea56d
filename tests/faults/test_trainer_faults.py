"""The trainer killed while it writes a checkpoint, and a full disk under TensorBoard's writer:
the previous checkpoint stays whole, nothing logged before it is lost, and ``--resume`` ends
with the rows an uninterrupted run writes."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import textwrap

import pytest
from fault_runs import ARGS, SINUSOID, finish_and_check

from metarl.cli import main
from metarl.run import metrics
from metarl.run.checkpoint import load_checkpoint
from metarl.run.metrics import read_metrics

# The trainer, in its own process: the second checkpoint's bytes are half written when the
# process SIGKILLs itself (deterministic: no race against a timer).
KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys, types
    from metarl.cli import main
    from metarl.run import checkpoint

    calls = []

    class HalfThenKill:
        def __init__(self, fd):
            self.f = os.fdopen(fd, "wb")
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def write(self, data):
            calls.append(1)
            if len(calls) < 2:
                return self.f.write(data)
            self.f.write(bytes(data)[: len(data) // 2])
            self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        def flush(self):
            self.f.flush()
        def fileno(self):
            return self.f.fileno()

    checkpoint.os = types.SimpleNamespace(**{**vars(os), "fdopen": lambda fd, m: HalfThenKill(fd)})
    sys.exit(main(sys.argv[1:]))
    """
)


def test_trainer_killed_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, capsys):
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", KILLED_MID_WRITE, "train", str(SINUSOID), "--run-dir", str(run)]
    proc = subprocess.run([*cmd, *ARGS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt_dir = run / "checkpoints"
    assert [p.name for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]  # the torn write
    assert load_checkpoint(ckpt_dir / "last.pt")["iteration"] == 10  # the previous one, whole
    assert [r["iteration"] for r in read_metrics(run)] == [5, 10, 15, 20]
    finish_and_check(run, capsys)
    assert not [p.name for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]  # cleared


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_disk_full_under_tensorboard_is_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    """TensorBoard writes its event file from a background thread; a full disk there surfaces
    at the next scalar and ends like any full disk: exit code 3, one line naming the intact
    checkpoint (no thread traceback), and the run resumes with every row once."""
    from tensorboard.summary.writer import record_writer

    run = tmp_path / "run"
    real_log, real_write = metrics.MetricsLog.log, record_writer.RecordWriter.write
    full = []

    def write(self, data):
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", "events.out.tfevents")
        return real_write(self, data)

    def log(self, iteration, values):
        if iteration == 15:  # the disk fills under the event writer from here on
            full.append(True)
            if self._tb is not None:
                self._tb.add_scalar("probe", 0.0, iteration)
                self._tb.flush()  # the writer thread meets the full disk now
        return real_log(self, iteration, values)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    monkeypatch.setattr(metrics.MetricsLog, "log", log)
    assert main(["train", str(SINUSOID), "--run-dir", str(run), *ARGS]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left on the device"), err
    assert "the checkpoint of iteration 10" in err[0]
    assert [r["iteration"] for r in read_metrics(run)] == [5, 10]
    full.clear()
    monkeypatch.setattr(metrics.MetricsLog, "log", real_log)
    finish_and_check(run, capsys)
