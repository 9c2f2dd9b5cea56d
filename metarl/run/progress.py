"""Progress display: a rich progress bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def _fmt(metrics: dict[str, float], keys: list[str]) -> str:
    parts = []
    for k in keys:
        if k in metrics:
            v = metrics[k]
            short = k.split("/")[-1]
            parts.append(f"{short}={v:.4g}")
    return " ".join(parts)


class ProgressReporter:
    def __init__(self, total: int, start: int, keys: list[str], console: Console) -> None:
        self.total, self.keys, self.console = total, keys, console
        self.interactive = console.is_terminal
        self.t0 = time.perf_counter()
        self.start = start
        self.every = max(1, (total - start) // 20)
        self._bar = None
        if self.interactive:
            self._bar = Progress(
                TextColumn("[bold]meta-train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=console,
            )
            self._task = self._bar.add_task("", total=total, completed=start)
            self._bar.start()

    def update(self, done: int, metrics: dict[str, float]) -> None:
        text = _fmt(metrics, self.keys)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, description=text)
        elif (done - self.start) % self.every == 0 or done == self.total:
            elapsed = time.perf_counter() - self.t0
            print(f"[{done}/{self.total}] {elapsed:7.1f}s {text}", file=sys.stdout, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
