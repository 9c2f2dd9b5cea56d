"""The few-shot meta-learners behind one interface, so the experiment drives each the same way.

=================== ==============================================================
member              what it does
=================== ==============================================================
``meta_step``       one outer update on a meta-batch; returns the query loss, the
                    task-averaged query metrics and learner-specific log entries
``probe``           the meta-step's computation in a given task-batching mode,
                    without updating (``task_batching: auto`` times it)
``curve``           query loss and metrics after 0..S inner steps, ``[S + 1, tasks]``
``eval_steps``      the inner steps evaluation uses (0 for ProtoNets)
``train_shots``     support shots per class in training (None: the task's own)
``state_dict``      ``{"learner", "optimizer"}``, the checkpoint's layout
=================== ==============================================================

MAML, FOMAML, Meta-SGD and ANIL (:class:`metarl.core.MAML`) and ProtoNets are stepped by Adam on
their meta-loss; Reptile (:class:`metarl.core.Reptile`) moves theta toward the adapted weights
with an annealed step and its own inner mini-batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from metarl.core import MAML, Reptile, load_optimizer_state, map_tasks

from .config import AlgoConfig, FewShotConfig
from .episodes import inner_batches
from .protonets import ProtoNet

Step = tuple[Tensor, dict[str, Tensor], dict[str, float]]


class FewShotLearner:
    """The interface (see the module docstring); ``module`` is the wrapped meta-learner."""

    train_shots: int | None = None

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    @property
    def task_batching(self) -> str:
        return self.module.task_batching

    @task_batching.setter
    def task_batching(self, mode: str) -> None:
        self.module.task_batching = mode

    def eval_steps(self, steps: int) -> int:
        return steps

    def probe(self, support: Any, query: Any, mode: str) -> None:
        raise NotImplementedError

    def meta_step(self, support: Any, query: Any, iteration: int, rng: np.random.Generator) -> Step:
        raise NotImplementedError

    def curve(
        self, support: Any, query: Any, steps: int, rng: np.random.Generator
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.module.state_dict(), "optimizer": None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["learner"])


class GradientLearner(FewShotLearner):
    """A learner with a differentiable meta-loss (the MAML family, ProtoNets), stepped by Adam."""

    def __init__(self, module: MAML | ProtoNet, outer_lr: float) -> None:
        super().__init__(module)
        self.optimizer = torch.optim.Adam(module.parameters(), lr=outer_lr)

    def probe(self, support: Any, query: Any, mode: str) -> None:
        loss, _ = self.module.meta_loss(support, query, mode=mode)
        torch.autograd.grad(loss, list(self.module.parameters()), allow_unused=True)

    def meta_step(self, support: Any, query: Any, iteration: int, rng: np.random.Generator) -> Step:
        loss, metrics = self.module.meta_loss(support, query)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss, metrics, {}

    def curve(
        self, support: Any, query: Any, steps: int, rng: np.random.Generator
    ) -> dict[str, Tensor]:
        return self.module.adaptation_curve(support, query, steps)

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state saved on any device (:func:`metarl.core.load_optimizer_state`)."""
        super().load_state_dict(state)
        load_optimizer_state(self.optimizer, state["optimizer"])


class ProtoNetLearner(GradientLearner):
    """ProtoNets: no inner steps, so the curve is the one point after 0 steps."""

    def eval_steps(self, steps: int) -> int:
        return 0

    def curve(
        self, support: Any, query: Any, steps: int, rng: np.random.Generator
    ) -> dict[str, Tensor]:
        with torch.no_grad():
            losses, metrics = self.module.task_losses(support, query)
        return {"loss": losses.unsqueeze(0), **{k: v.unsqueeze(0) for k, v in metrics.items()}}


class ReptileLearner(FewShotLearner):
    """Reptile: the outer step ``meta_step`` annealed linearly to ``meta_step_final`` over the
    run, inner mini-batches of ``inner_batch_size`` drawn from ``train_shots`` per class."""

    def __init__(self, module: Reptile, cfg: FewShotConfig, loss_fn: Any) -> None:
        super().__init__(module)
        self.algo: AlgoConfig = cfg.algo
        self.iterations = cfg.train.iterations
        self.eval_batch_size = cfg.eval.inner_batch_size
        self.train_shots = cfg.algo.train_shots
        self.loss_fn = loss_fn

    def step_size(self, iteration: int) -> float:
        """The outer step at ``iteration``: linear from ``meta_step`` to ``meta_step_final``."""
        a = self.algo
        frac = iteration / max(1, self.iterations)
        return a.meta_step + (a.meta_step_final - a.meta_step) * frac

    def probe(self, support: Any, query: Any, mode: str) -> None:
        self.module.adapt_batch(support, mode=mode)

    def meta_step(self, support: Any, query: Any, iteration: int, rng: np.random.Generator) -> Step:
        eps = self.step_size(iteration)
        rows = _rows(support, self.algo.inner_batch_size, self.algo.inner_steps, rng)
        adapted = self.module.meta_step(support, eps, rows=rows)
        # the adapted parameters judged on the query sets: the number Reptile is trained for
        losses, metrics = map_tasks(
            self.loss_fn, adapted, query, in_dims=(0, 0), mode=self.module.task_batching
        )
        means = {k: v.mean() for k, v in metrics.items()}
        return losses.mean(), means, {"train/meta_step": eps}

    def curve(
        self, support: Any, query: Any, steps: int, rng: np.random.Generator
    ) -> dict[str, Tensor]:
        rows = _rows(support, self.eval_batch_size, steps, rng)
        return self.module.adaptation_curve(support, query, steps, rows=rows)


def _rows(support: Any, batch_size: int | None, steps: int, rng) -> Tensor | None:
    """Reptile's inner mini-batches for this meta-batch on the support set's device, or ``None``
    (whole support set; a batch of exactly the support size is each epoch reshuffled, the same
    thing)."""
    tasks, examples = support[1].shape[:2]
    if batch_size is None or batch_size == examples:
        return None
    return inner_batches(tasks, examples, batch_size, steps, rng).to(support[1].device)


def is_head(name: str) -> bool:
    """ANIL's filter: the parameters of the ``head`` layer, wherever the model nests it."""
    return name.startswith("head.") or ".head." in name


def build_learner(cfg: FewShotConfig, model: nn.Module, loss_fn: Any, mode: str) -> FewShotLearner:
    """The learner ``cfg.algo.name`` names, over ``model`` with the task loss ``loss_fn``."""
    a = cfg.algo
    if a.name == "reptile":
        reptile = Reptile(
            model,
            loss_fn,
            a.inner_lr,
            a.inner_steps,
            a.inner_optimizer,
            task_batching=mode,
            carry_optimizer_state=a.inner_state == "carry",
        )
        return ReptileLearner(reptile, cfg, loss_fn)
    if a.name == "protonets":
        return ProtoNetLearner(ProtoNet(model, cfg.task.ways, task_batching=mode), a.outer_lr)
    maml = MAML(
        model,
        loss_fn,
        a.inner_lr,
        a.inner_steps,
        first_order=a.name == "fomaml",
        learn_inner_lr=a.name == "metasgd",
        adapt_prefixes=is_head if a.name == "anil" else None,
        task_batching=mode,
    )
    return GradientLearner(maml, a.outer_lr)
