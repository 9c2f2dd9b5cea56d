"""Metrics of a run: one JSON object per logged iteration in ``metrics.jsonl``, and the same
scalars as TensorBoard events under their namespaced tags (``train/...``, ``eval/...``). Each
JSON row also holds ``time/wall``, the Unix time it was written (TensorBoard events carry their
own), from which ``metarl status`` measures a run's pace."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any


class MetricsLog:
    """Append-only metrics; on resume, rows past the checkpoint (and a torn last line) are
    dropped so the file matches the state the run continues from."""

    def __init__(self, run_dir: Path, resume_from: int | None = None) -> None:
        self.path = run_dir / "metrics.jsonl"
        if resume_from is not None and self.path.exists():
            kept = [
                json.dumps(row)
                for row in _parse(self.path.read_text())
                if row.get("iteration", 0) <= resume_from
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = self.path.open("a")
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(
                str(run_dir / "tensorboard"),
                purge_step=None if resume_from is None else resume_from + 1,
            )
        except ImportError:  # tensorboard is a dependency; keep going without it if removed
            self._tb = None
        _quiet_event_writer_thread()

    def log(self, iteration: int, values: dict[str, float]) -> None:
        row: dict[str, Any] = {"iteration": iteration}
        for k, v in values.items():
            v = float(v)
            row[k] = v if math.isfinite(v) else str(v)
            if self._tb is not None:
                self._tb.add_scalar(k, v, iteration)
        row["time/wall"] = round(time.time(), 3)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _quiet_event_writer_thread() -> None:
    """Keep TensorBoard's writer thread from printing a traceback when its disk write fails:
    the writer re-raises that ``OSError`` in the training thread at the next scalar, flush or
    close, where the CLI turns it into its one ``error:`` line (e.g. a full disk)."""
    previous = threading.excepthook
    if getattr(previous, "quiets_event_writer", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        writer_thread = type(args.thread).__name__ == "_AsyncWriterThread"
        if not (writer_thread and isinstance(args.exc_value, OSError)):
            previous(args)

    hook.quiets_event_writer = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return _parse(path.read_text())


def _parse(text: str) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``; a torn last line (a write cut short by a full disk or a
    kill) is dropped, so a run that stopped mid-write still reads and resumes."""
    lines = [line for line in text.splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise
    return rows
