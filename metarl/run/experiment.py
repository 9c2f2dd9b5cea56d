"""What the run layer needs from a domain: an object following :class:`Experiment`.

``metarl.fewshot.experiment.build(cfg)`` and ``metarl.rl.experiment.build(cfg)`` return one. The
trainer (``metarl.run.trainer``) owns the loop, logging, checkpoints, resume, progress and the
summary; the experiment owns its maths, its data and its random streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from metarl.core import AdaptationCurve


class Experiment(Protocol):
    #: metric keys (as returned by ``train_iteration``) shown in the progress bar
    progress_keys: list[str]
    # Optional: ``device: torch.device``, where the experiment computes (``train.device``
    # resolved; printed at the start and written to summary.json). Without it: the CPU.

    def train_iteration(self, iteration: int) -> dict[str, float]:
        """One outer iteration. Returns scalars with namespaced keys: ``train/...``,
        ``time/...`` (seconds), ``perf/...`` (throughput)."""

    def evaluate(self, num_tasks: int | None = None, split: str = "test") -> AdaptationCurve:
        """The paper's evaluation on held-out tasks from a seed stream of their own; must not
        advance the training random streams."""

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume bit-for-bit: tensors and plain Python data only (loadable with
        ``torch.load(weights_only=True)``), random generator states included. Checkpoints save
        the tensors on the CPU; ``load_state_dict`` gets them on the experiment's device."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def save_plots(self, run_dir: Path, curve: AdaptationCurve) -> list[Path]:
        """Write the domain's PNG plots into ``run_dir``; return their paths."""

    def describe(self) -> str:
        """Optional: one line printed once at the start of training (e.g. the sampler backend
        an ``auto`` setting resolved to)."""

    def reference_curves(self) -> dict[str, list[float]]:
        """Optional: published curves to draw beside this run's, ``{label: [value per step]}``."""

    def summary_extra(self) -> dict[str, Any]:
        """Extra keys for ``summary.json`` (e.g. ``normalization``, ``task_batching``)."""
