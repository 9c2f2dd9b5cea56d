"""The supervised few-shot experiment: tasks, model, meta-learner and outer optimizer, wired from
a :class:`~metarl.fewshot.config.FewShotConfig` (follows ``metarl.run.experiment.Experiment``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.core import (
    MAML,
    AdaptationCurve,
    Reptile,
    choose_task_batching,
    map_tasks,
    summarize,
)

from .config import FewShotConfig
from .episodes import inner_batches
from .protonets import ProtoNet
from .sources import SinusoidSource, build_model, build_source

STREAMS = {"train": 0, "val": 1, "test": 2}


def seeded(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator for ``(seed, *stream)``: streams never share draws."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def is_head(name: str) -> bool:
    """ANIL's filter: the parameters of the ``head`` layer, wherever the model nests it."""
    return name.startswith("head.") or ".head." in name


def build_learner(cfg: FewShotConfig, model, loss_fn, mode: str) -> MAML | Reptile | ProtoNet:
    a = cfg.algo
    if a.name == "reptile":
        return Reptile(
            model,
            loss_fn,
            a.inner_lr,
            a.inner_steps,
            a.inner_optimizer,
            task_batching=mode,
            carry_optimizer_state=a.inner_state == "carry",
        )
    if a.name == "protonets":
        return ProtoNet(model, cfg.task.ways, task_batching=mode)
    return MAML(
        model,
        loss_fn,
        a.inner_lr,
        a.inner_steps,
        first_order=a.name == "fomaml",
        learn_inner_lr=a.name == "metasgd",
        adapt_prefixes=is_head if a.name == "anil" else None,
        task_batching=mode,
    )


class FewShotExperiment:
    progress_keys = ["train/loss", "train/accuracy", "perf/tasks_per_s"]

    def __init__(self, cfg: FewShotConfig) -> None:
        self.cfg = cfg
        self.rng = seeded(cfg.seed, STREAMS["train"])
        self.source = build_source(cfg)
        self.model = build_model(cfg, self.source)
        self.loss_fn = self.source.loss_fn(self.model)
        self.metric = self.source.metric
        self.task_batching = cfg.algo.task_batching
        self.batching_timings: dict[str, float] = {}
        mode = "vmap" if self.task_batching == "auto" else self.task_batching
        self.learner = build_learner(cfg, self.model, self.loss_fn, mode)
        self.optimizer = None
        if not isinstance(self.learner, Reptile):
            self.optimizer = torch.optim.Adam(self.learner.parameters(), lr=cfg.algo.outer_lr)

    # -- training -------------------------------------------------------------------------
    def _resolve_batching(self, support: Any, query: Any) -> None:
        """``task_batching: auto``: time vmap and the loop on the first real batch, keep the
        faster (which one wins depends on the model and the query size: on 2 CPU cores vmap was
        ~2.2x faster for 5-way 1-shot Omniglot with one query image per class, slower with 15)."""
        if self.task_batching != "auto":
            return

        def run(mode: str) -> None:
            if isinstance(self.learner, Reptile):
                self.learner.adapt_batch(support, mode=mode)
            else:
                loss, _ = self.learner.meta_loss(support, query, mode=mode)
                torch.autograd.grad(loss, list(self.learner.parameters()), allow_unused=True)

        self.task_batching, self.batching_timings = choose_task_batching(run)
        self.learner.task_batching = self.task_batching

    def meta_step_size(self, iteration: int) -> float:
        """Reptile's outer step, linearly annealed from ``meta_step`` to ``meta_step_final``."""
        a = self.cfg.algo
        frac = iteration / max(1, self.cfg.train.iterations)
        return a.meta_step + (a.meta_step_final - a.meta_step) * frac

    def _rows(self, support: Any, batch_size: int | None, steps: int, rng) -> Tensor | None:
        """Reptile's inner mini-batches for this meta-batch, or ``None`` (whole support set; a
        batch of exactly the support size is each epoch reshuffled, the same thing)."""
        tasks, examples = support[1].shape[:2]
        if batch_size is None or batch_size == examples:
            return None
        return inner_batches(tasks, examples, batch_size, steps, rng)

    def train_iteration(self, iteration: int) -> dict[str, float]:
        a = self.cfg.algo
        t0 = time.perf_counter()
        shots = a.train_shots if isinstance(self.learner, Reptile) else None
        support, query = self.source.sample(a.meta_batch_size, "train", self.rng, shots=shots)
        t1 = time.perf_counter()
        self._resolve_batching(support, query)
        out: dict[str, float] = {}
        if isinstance(self.learner, Reptile):
            eps = self.meta_step_size(iteration)
            rows = self._rows(support, a.inner_batch_size, a.inner_steps, self.rng)
            adapted = self.learner.meta_step(support, eps, rows=rows)
            out["train/meta_step"] = eps
            # the adapted parameters judged on the query sets: the number Reptile is trained for
            losses, metrics = map_tasks(
                self.loss_fn, adapted, query, in_dims=(0, 0), mode=self.learner.task_batching
            )
            loss = losses.mean()
            metrics = {k: v.mean() for k, v in metrics.items()}
        else:
            loss, metrics = self.learner.meta_loss(support, query)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        t2 = time.perf_counter()
        out["train/loss"] = float(loss.detach())
        for k, v in metrics.items():
            if k != "mse":
                out[f"train/{k}"] = float(v.detach()) * (100.0 if k == "accuracy" else 1.0)
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
        steps = 0 if isinstance(self.learner, ProtoNet) else ev.steps
        rng = seeded(self.cfg.seed, 1000 + STREAMS[split])
        chunks: list[Tensor] = []
        done = 0
        while done < n:
            size = min(ev.batch_size, n - done)
            support, query = self.source.sample(size, split, rng, ev.query)
            if isinstance(self.learner, ProtoNet):
                with torch.no_grad():
                    _, metrics = self.learner.task_losses(support, query)
                chunks.append(metrics[self.metric].unsqueeze(0))
            elif isinstance(self.learner, Reptile):
                rows = self._rows(support, ev.inner_batch_size, steps, rng)
                curve = self.learner.adaptation_curve(support, query, steps, rows=rows)
                chunks.append(curve[self.metric])
            else:
                chunks.append(self.learner.adaptation_curve(support, query, steps)[self.metric])
            done += size
        values = torch.cat(chunks, dim=1)
        if self.metric == "accuracy":
            values = values * 100.0
        return summarize(self.metric, values, list(range(steps + 1)))

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "task_batching": self.task_batching,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
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
        plot_sinusoid_fit(self.learner, self.model, batch, max(1, self.cfg.eval.steps), path)
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


def build(cfg: FewShotConfig) -> FewShotExperiment:
    return FewShotExperiment(cfg)
