"""The supervised few-shot experiment: tasks, model, meta-learner and outer optimizer, wired from
a :class:`~metarl.fewshot.config.FewShotConfig` (follows ``metarl.run.experiment.Experiment``).

Everything lives on ``device`` (the run layer resolves ``train.device`` to it): the model, the
meta-learner's parameters (Meta-SGD's step sizes included), the optimizer state, every episode
and the evaluation. The random draws are numpy's on the host, the same on every device.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.core import (
    AdaptationCurve,
    choose_task_batching,
    summarize,
)

from .config import FewShotConfig
from .learners import build_learner
from .task_sources import CPU, SinusoidSource, build_model, build_source

STREAMS = {"train": 0, "val": 1, "test": 2}


def seeded(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator for ``(seed, *stream)``: streams never share draws."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


class FewShotExperiment:
    progress_keys = ["train/loss", "train/accuracy", "perf/tasks_per_s"]

    def __init__(self, cfg: FewShotConfig, device: torch.device | str = CPU) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.rng = seeded(cfg.seed, STREAMS["train"])
        self.source = build_source(cfg, self.device)
        self.model = build_model(cfg, self.source)
        self.loss_fn = self.source.loss_fn(self.model)
        self.metric = self.source.metric
        self.task_batching = cfg.algo.task_batching
        self.batching_timings: dict[str, float] = {}
        mode = "vmap" if self.task_batching == "auto" else self.task_batching
        self.learner = build_learner(cfg, self.model, self.loss_fn, mode)

    # -- training -------------------------------------------------------------------------
    def _resolve_batching(self, support: Any, query: Any) -> None:
        """``task_batching: auto``: time vmap and the loop on the first real batch, keep the
        faster (which one wins depends on the model and the query size: on 2 CPU cores vmap was
        ~2.2x faster for 5-way 1-shot Omniglot with one query image per class, slower with 15)."""
        if self.task_batching != "auto":
            return

        def run(mode: str) -> None:
            self.learner.probe(support, query, mode)
            synchronize(self.device)  # time the computation, not its launch

        self.task_batching, self.batching_timings = choose_task_batching(run)
        self.learner.task_batching = self.task_batching

    def train_iteration(self, iteration: int) -> dict[str, float]:
        a = self.cfg.algo
        t0 = time.perf_counter()
        support, query = self.source.sample(
            a.meta_batch_size, "train", self.rng, shots=self.learner.train_shots
        )
        t1 = time.perf_counter()
        self._resolve_batching(support, query)
        loss, metrics, out = self.learner.meta_step(support, query, iteration, self.rng)
        names = [k for k in metrics if k != "mse"]
        # one copy to the host (on a GPU: waits for the step, so the times below are true)
        values = torch.stack([loss.detach(), *(metrics[k].detach() for k in names)]).tolist()
        t2 = time.perf_counter()
        out["train/loss"] = values[0]
        for k, v in zip(names, values[1:]):
            out[f"train/{k}"] = v * (100.0 if k == "accuracy" else 1.0)
        out["time/sample_s"] = t1 - t0
        out["time/step_s"] = t2 - t1
        out["perf/tasks_per_s"] = self.cfg.algo.meta_batch_size / max(t2 - t0, 1e-9)
        return out

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, num_tasks: int | None = None, split: str = "test") -> AdaptationCurve:
        """The papers' protocol: ``eval.tasks`` held-out tasks from ``split``, the metric after
        0..``eval.steps`` inner steps (accuracy in percent), mean and 95% CI over tasks. The same
        tasks every time (a fresh generator per call), independent of training."""
        ev = self.cfg.eval
        n = num_tasks or ev.tasks
        steps = self.learner.eval_steps(ev.steps)
        rng = seeded(self.cfg.seed, 1000 + STREAMS[split])
        chunks: list[Tensor] = []
        done = 0
        while done < n:
            size = min(ev.batch_size, n - done)
            support, query = self.source.sample(size, split, rng, ev.query)
            chunks.append(self.learner.curve(support, query, steps, rng)[self.metric])
            done += size
        values = torch.cat(chunks, dim=1).cpu()
        if self.metric == "accuracy":
            values = values * 100.0
        return summarize(self.metric, values, list(range(steps + 1)))

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The learner, optimizer and random streams (checkpoints save the tensors on the CPU;
        :meth:`load_state_dict` takes them from any device onto this experiment's)."""
        return {
            **self.learner.state_dict(),  # "learner" and "optimizer"
            "rng": self.rng.bit_generator.state,
            "task_batching": self.task_batching,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]
        self.task_batching = state["task_batching"]
        if self.task_batching != "auto":
            self.learner.task_batching = self.task_batching

    # -- reporting ------------------------------------------------------------------------
    def save_plots(self, run_dir: Path, curve: AdaptationCurve) -> list[Path]:
        if not isinstance(self.source, SinusoidSource):
            return []
        from .plots import plot_sinusoid_fit

        batch = self.source.tasks.sample(1, self.cfg.task.shots, 1, seeded(self.cfg.seed, 2000))
        path = run_dir / "sinusoid_fit.png"
        plot_sinusoid_fit(self.learner.module, self.model, batch, max(1, self.cfg.eval.steps), path)
        return [path]

    def summary_extra(self) -> dict[str, Any]:
        c = self.cfg
        extra: dict[str, Any] = {
            "task": c.task.name,
            "algo": c.algo.name,
            "task_batching": self.task_batching,
        }
        if c.task.name != "sinusoid":
            extra.update(
                ways=c.task.ways,
                shots=c.task.shots,
                split=c.task.split,
                normalization=c.model.normalization,
                accuracy_unit="percent",
            )
        if self.batching_timings:
            extra["task_batching_timings_s"] = {
                k: round(v, 5) for k, v in self.batching_timings.items()
            }
        return extra


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU runs asynchronously; a CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(cfg: FewShotConfig, device: torch.device | str = CPU) -> FewShotExperiment:
    return FewShotExperiment(cfg, device)
