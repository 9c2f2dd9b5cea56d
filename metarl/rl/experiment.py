"""The meta-RL experiment the run layer drives (:class:`metarl.run.experiment.Experiment`).

Random streams, all derived from ``cfg.seed``: training tasks (``[seed, 0]``), exploration noise
and env resets (``[seed, 1]``), policy initialisation (torch generator seeded with ``seed``, or
with ``policy.init_seed`` when set), the observation statistics of ``policy.normalize_obs``
(``[seed, 13]``), and per-split evaluation streams (``[seed, 7, split]``) that
are rebuilt on every ``evaluate`` call, so evaluating never advances training.

The learner computes on ``device`` (the run layer resolves ``train.device`` to it): the policy,
Meta-SGD's step sizes, the learner's state, the inner steps, baseline fits and advantages, TRPO's
curvature products, CG and line search, and the evaluation's adaptation steps. The envs step on
the CPU; the sampler moves parameters there and episodes back once per sampling phase
(:class:`~metarl.rl.sampling.sampler.Sampler`). The policy is initialised on the CPU before it
moves, so a seed gives the same initial weights on every device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

from metarl.core import (
    CPU,
    AdaptationCurve,
    InnerSpec,
    Params,
    named_params,
    summarize,
    unstack_params,
)

from .algos.maml_trpo import MAMLTRPO
from .algos.promp import ProMP
from .algos.reptile import ReptileRL
from .config import InnerConfig, RLConfig
from .diagnostics import policy_diagnostics
from .inner_loop import InnerLoop
from .obs_statistics import random_action_statistics
from .policies import Policy, make_policy
from .sampling.backends import env_horizon
from .sampling.sampler import Sampler
from .video import record_video

SPLITS = {"test": 0, "val": 1, "train": 2}

#: MAML paper adaptation curves (mean over 40 test tasks after 0..3 steps, decoded from the
#: figure data the authors published with cbfinn/maml_rl), drawn beside ours in the plots
PAPER_CURVES = {
    "metarl/Navigation2D-v0": [-40.4, -11.7, -3.3, -3.2],
    "metarl/HalfCheetahVel-v0": [-129.5, -78.6, -66.6, -60.8],
    "metarl/HalfCheetahDir-v0": [-50.7, 293.2, 313.5, 315.7],
    "metarl/AntVel-v0": [30.6, 96.7, 100.1, 101.4],
    "metarl/AntDir-v0": [8.7, 499.1, 500.7, 499.1],
}


#: the MAML paper's baselines from the same data (40 test tasks): pretrained and random-init
#: policies after 0..3 gradient steps, and the oracle's return
PAPER_BASELINES = {
    "metarl/Navigation2D-v0": {
        "pretrained": [-40.8, -19.7, -11.7, -8.5],
        "random": [-82.7, -58.0, -53.8, -46.8],
        "oracle": [-2.3],
    },
    "metarl/HalfCheetahVel-v0": {
        "pretrained": [-158.0, -135.4, -128.5, -133.6],
        "random": [-254.8, -254.3, -246.8, -230.8],
        "oracle": [-54.5],
    },
    "metarl/HalfCheetahDir-v0": {
        "pretrained": [-43.0, -24.7, -12.8, 19.6],
        "random": [-35.7, 21.8, 62.3, 86.2],
        "oracle": [442.7],
    },
    "metarl/AntVel-v0": {"oracle": [107.9]},  # the paper's figure 5; no baseline rows for Ant
}


def paper_task(env_id: str, kwargs: dict[str, Any], horizon: int | None) -> bool:
    """Whether an env section is a task the MAML paper reports: one of its envs as registered
    (no ``env.kwargs``, the registered horizon). The same envs with other settings, such as
    the ProMP paper's (frame skip 5, horizon 100), are other tasks with other returns."""
    if env_id not in PAPER_CURVES or kwargs:
        return False
    return env_horizon(env_id, None) == env_horizon(env_id, horizon)


def paper_curves(
    env_id: str, algo: str, kwargs: dict[str, Any], horizon: int | None
) -> dict[str, list[float]]:
    """``{"MAML paper": [return after 0..3 steps]}`` for MAML-TRPO on the paper's tasks
    (:func:`paper_task`), else ``{}`` (the paper's single run per env, 40 test tasks)."""
    if algo != "maml_trpo" or not paper_task(env_id, kwargs, horizon):
        return {}
    return {"MAML paper": PAPER_CURVES[env_id]}


class RLExperiment:
    """MAML-TRPO, Reptile or ProMP on one task distribution, built from an :class:`RLConfig`."""

    progress_keys = ["train/return_before", "train/return_after", "perf/env_steps_per_s"]

    def __init__(self, cfg: RLConfig, device: torch.device | str = CPU) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        algo = cfg.algo
        self.task_rng = np.random.default_rng([cfg.seed, 0])
        self.sample_rng = np.random.default_rng([cfg.seed, 1])
        self.env = gymnasium.make(cfg.env.id, **cfg.env.kwargs)
        self.task_env = self.env.unwrapped
        init_seed = cfg.seed if cfg.policy.init_seed is None else cfg.policy.init_seed
        init = torch.Generator().manual_seed(init_seed)
        self.policy = make_policy(
            self.env.observation_space,
            self.env.action_space,
            cfg.policy.hidden_sizes,
            cfg.policy.activation,
            cfg.policy.init_log_std,
            init,
        )
        if cfg.policy.normalize_obs:  # before the sampler, whose workers copy the policy
            horizon = env_horizon(cfg.env.id, cfg.env.horizon)
            mean, std = random_action_statistics(self.env, horizon, cfg.seed)
            self.policy.set_obs_normalization(mean, std)
        self.policy.to(self.device)  # the sampler keeps a CPU copy for its rollouts
        self.sampler = Sampler.from_config(cfg, self.policy, self.sample_rng, self.device)
        self.inner = InnerLoop(
            self.policy,
            inner_spec(algo.inner, self.policy),
            gamma=algo.gamma,
            gae_lambda=algo.gae_lambda,
            normalize_advantages=algo.normalize_advantages,
            task_batching="vmap" if algo.task_batching == "auto" else algo.task_batching,
        )
        self.algo = self._make_learner()
        self.iteration = 0
        #: training env steps so far (logged as ``train/env_steps``, the x-axis of learning
        #: curves against samples); None for runs resumed from checkpoints that lack it
        self.env_steps: int | None = 0

    def _make_learner(self) -> MAMLTRPO | ReptileRL | ProMP | None:
        """The outer learner ``algo.name`` names (subclasses that train otherwise: None)."""
        learner = {"maml_trpo": MAMLTRPO, "reptile": ReptileRL, "promp": ProMP}[self.cfg.algo.name]
        return learner.from_config(self.cfg.algo, self.inner, self.sampler)

    def learned_lrs(self) -> dict[str, torch.Tensor] | None:
        """Meta-SGD's learned step sizes (``algo.inner.learn_lr``), else None."""
        return getattr(self.algo, "inner_lrs", None)

    # -- training -----------------------------------------------------------------------------
    def train_iteration(self, iteration: int) -> dict[str, float]:
        tasks = self.task_env.sample_tasks(self.cfg.algo.meta_batch_size, self.task_rng)
        sample_t0 = self.sampler.total_time
        theta = {k: v.detach().clone() for k, v in named_params(self.policy).items()}
        m = self.algo.step(tasks)
        sample_s = self.sampler.total_time - sample_t0
        self.iteration = iteration + 1
        out = {
            "train/return_before": m["return_before"],
            "train/return_after": m["return_after"],
            "perf/env_steps_per_s": m["env_steps"] / max(sample_s, 1e-9),
            "time/sample_s": sample_s,
            "time/inner_s": m["inner_s"] - sample_s,
            "time/outer_s": m["outer_s"],
        }
        if self.env_steps is not None:
            self.env_steps += int(m["env_steps"])
            out["train/env_steps"] = float(self.env_steps)
        for key in (
            "kl",
            "surrogate_change",
            "ls_steps",
            "ls_accepted",
            "param_change",
            "kl_inner",
            "clip_fraction",
            "inner_kl_penalty",
        ):
            if key in m:
                out[f"train/{key}"] = m[key]
        diag = policy_diagnostics(
            self.policy,
            theta,
            self.algo.pre_update_episodes,
            self.env.action_space,
            self.sampler.action_map,
        )
        out.update({f"diag/{k}": v for k, v in diag.items()})
        return out

    # -- evaluation ---------------------------------------------------------------------------
    def _eval_rngs(self, split: str) -> tuple[np.random.Generator, np.random.Generator]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        tasks_rng = np.random.default_rng([self.cfg.seed, 7, SPLITS[split], 0])
        noise_rng = np.random.default_rng([self.cfg.seed, 7, SPLITS[split], 1])
        return tasks_rng, noise_rng

    def evaluate(self, num_tasks: int | None = None, split: str = "test") -> AdaptationCurve:
        """Return after 0..``eval.steps`` inner steps on held-out tasks (mean, s.e. over tasks)."""
        tasks_rng, noise_rng = self._eval_rngs(split)
        tasks = self.task_env.sample_tasks(num_tasks or self.cfg.eval.tasks, tasks_rng)
        return self._adaptation_curve(tasks, noise_rng)

    def evaluate_on(self, tasks: list[dict], split: str = "test") -> AdaptationCurve:
        """:meth:`evaluate` on given task dicts instead of drawn ones (e.g. a paper's own test
        tasks; completed and validated as :meth:`adapt_to_tasks` does), with ``split``'s
        exploration-noise stream."""
        _, noise_rng = self._eval_rngs(split)
        return self._adaptation_curve(self._valid_tasks(tasks), noise_rng)

    def _valid_tasks(self, tasks: list[dict]) -> list[dict]:
        """Task dicts completed with the unmodified env's values for a dynamics family's
        parameters left out (``envs`` ``complete_task``), each checked by the env's ``set_task``
        (a ``ValueError`` that names the valid keys and ranges)."""
        tasks = [self.task_env.complete_task(task) for task in tasks]
        for task in tasks:
            self.task_env.set_task(task)
        return tasks

    def _adaptation_curve(
        self, tasks: list[dict], noise_rng: np.random.Generator
    ) -> AdaptationCurve:
        values, _ = self.inner.adaptation_returns(
            self.sampler,
            named_params(self.policy),
            tasks,
            self.cfg.eval.steps,
            self.cfg.eval.episodes_per_task,
            noise_rng,
            self.cfg.eval.inner_lrs,
            self.learned_lrs(),
        )
        return summarize("return", values, tasks=tasks)

    def adapt_to_tasks(
        self, tasks: list[dict], steps: int, episodes: int
    ) -> tuple[list[list[float]], list[Params]]:
        """Adapt the meta-policy to given task dicts (``metarl adapt``); a dynamics family's
        parameters left out keep the unmodified env's values (``envs`` ``complete_task``).

        Returns one row per task, the mean return after 0..``steps`` inner steps, and the
        adapted parameters of each task. Invalid tasks raise ``ValueError`` from the env's
        ``set_task`` (it names the valid keys and ranges).
        """
        if steps < 0 or episodes < 1:
            raise ValueError(f"need steps >= 0 and episodes >= 1, got {steps} and {episodes}")
        tasks = self._valid_tasks(tasks)
        rng = np.random.default_rng([self.cfg.seed, 11])
        params = named_params(self.policy)
        values, adapted = self.inner.adaptation_returns(
            self.sampler,
            params,
            tasks,
            steps,
            episodes,
            rng,
            self.cfg.eval.inner_lrs,
            self.learned_lrs(),
        )
        rows = [[float(values[k, i]) for k in range(steps + 1)] for i in range(len(tasks))]
        if steps == 0:
            per_task = [{k: v.detach().clone() for k, v in params.items()} for _ in tasks]
        else:
            per_task = unstack_params(adapted)
        return rows, per_task

    def policy_params(self) -> Params:
        """The meta-learned policy's parameters (detached copies)."""
        return {k: v.detach().clone() for k, v in named_params(self.policy).items()}

    def record_video(self, params: list[Params], labels: list[str], task: dict, path: Path) -> Path:
        """One episode per parameter dict on ``task`` (completed as :meth:`adapt_to_tasks`
        completes it), side by side, in real time, the camera on the agent
        (:mod:`metarl.rl.video`)."""
        return record_video(
            self.cfg.env.id,
            self.cfg.env.kwargs,
            self.sampler.horizon,
            self.sampler.policy,  # on the CPU, beside the env
            [{k: v.detach().to(CPU) for k, v in p.items()} for p in params],
            labels,
            self.task_env.complete_task(task),
            self.cfg.seed,
            self.sampler.action_map,
            path,
        )

    # -- checkpoints and summary --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        learned = self.learned_lrs()
        return {
            "policy": {k: v.detach().clone() for k, v in self.policy.state_dict().items()},
            **({"inner_lrs": {k: v.clone() for k, v in learned.items()}} if learned else {}),
            **({"learner": self.algo.state_dict()} if hasattr(self.algo, "state_dict") else {}),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "task_rng": self.task_rng.bit_generator.state,
            "sample_rng": self.sample_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.sampler.policy is not self.policy:  # its CPU copy: the same buffers
            self.sampler.policy.load_state_dict(state["policy"])
        if self.learned_lrs() is not None:
            self.algo.inner_lrs = {k: v.clone() for k, v in state["inner_lrs"].items()}
        if "learner" in state:  # the learner's own state (ProMP: its Adam moments and eta)
            self.algo.load_state_dict(state["learner"])
        self.iteration = int(state["iteration"])
        self.env_steps = state.get("env_steps")  # absent in checkpoints of older versions
        self.task_rng.bit_generator.state = state["task_rng"]
        self.sample_rng.bit_generator.state = state["sample_rng"]

    def save_plots(self, run_dir: Path, curve: AdaptationCurve) -> list[Path]:
        return []  # the run layer draws the adaptation curve, with reference_curves()

    def describe(self) -> str:
        """One line for the start of training: the resolved sampler backend and why."""
        return self.sampler.describe()

    def reference_curves(self) -> dict[str, list[float]]:
        """The MAML paper's curve for this env, drawn beside ours."""
        env = self.cfg.env
        return paper_curves(env.id, self.cfg.algo.name, env.kwargs, env.horizon)

    def summary_extra(self) -> dict[str, Any]:
        return {
            "env_id": self.cfg.env.id,
            "algo": self.cfg.algo.name,
            "sampler_backend": self.sampler.backend,
            "sampler_workers": self.sampler.num_workers,
            "horizon": self.sampler.horizon,
            "task_batching": self.inner.task_batching,
            "policy_parameters": sum(p.numel() for p in self.policy.parameters()),
            # training env steps of the whole run (resumes included, evaluation excluded); a
            # checkpoint of a version before the counter: what this process sampled
            "env_steps": self.sampler.total_steps if self.env_steps is None else self.env_steps,
        }

    def close(self) -> None:
        self.sampler.close()
        self.env.close()


def inner_spec(cfg: InnerConfig, policy: Policy) -> InnerSpec:
    """The core's inner-loop settings from ``algo.inner`` (``adapt: head`` names the policy's
    output layer; Adam steps are first order)."""
    return InnerSpec(
        lr=tuple(cfg.lr) if isinstance(cfg.lr, list) else cfg.lr,
        steps=cfg.steps,
        first_order=cfg.first_order or cfg.optimizer == "adam",
        learn_lr=cfg.learn_lr,
        names=policy.head_names() if cfg.adapt == "head" else None,
        optimizer=cfg.optimizer,
    )


def build(cfg: RLConfig, device: torch.device | str = CPU) -> RLExperiment:
    """The run layer's entry point: an :class:`RLExperiment` for ``cfg`` on ``device`` (the
    Stable-Baselines3 baselines train on the CPU)."""
    if not isinstance(cfg, RLConfig):
        cfg = RLConfig.model_validate(cfg)
    if cfg.algo.name == "sb3":
        from .sb3_baseline import SB3BaselineExperiment

        return SB3BaselineExperiment(cfg)
    return RLExperiment(cfg, device)


__all__ = [
    "PAPER_BASELINES",
    "PAPER_CURVES",
    "RLExperiment",
    "build",
    "inner_spec",
    "paper_curves",
    "paper_task",
]
