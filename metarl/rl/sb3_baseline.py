"""The MAML paper's non-meta baselines, trained by Stable-Baselines3 (``algo.name: sb3``).

``algo.method`` chooses the baseline (MAML paper section 5.3; RL² from Duan et al. 2016):

* ``pretrained``: one policy trained on the whole task distribution (a new task each episode)
  by SB3's PPO or sb3-contrib's TRPO (``algo.learner``), with the meta-learned policy's network
  (hidden sizes, activation, state-independent log-std). After every iteration its weights are
  copied into the run's metarl policy, which :meth:`evaluate` adapts with the very same inner
  loop, step sizes, episodes and held-out tasks as MAML (:class:`RLExperiment.evaluate`).
* ``oracle``: the same, with the task's parameters in the observation
  (:class:`envs.wrappers.TaskInObservation`); evaluated without adaptation on the same held-out
  tasks (one point: the return of ``eval.episodes_per_task`` episodes per task).
* ``rl2``: sb3-contrib's ``RecurrentPPO`` on trials of ``algo.episodes_per_trial`` episodes of
  one task (:class:`envs.wrappers.RL2Trial`: previous action, reward and episode-end flag in the
  observation, the LSTM state kept across the trial's episodes; on a batched family the same
  trials in :class:`~metarl.rl.sb3_vec_env.BatchedSB3VecEnv`), its LSTM run over whole
  sequences (:mod:`metarl.rl.sb3_recurrent`). Evaluated on the same
  held-out tasks: the curve's point ``k`` is the mean return of the trial's episode ``k + 1``.

The random-init baseline needs no training: it is :meth:`RLExperiment.evaluate` of an untrained
policy (``metarl baselines`` computes it).

The policy acts in the same units as metarl's sampler (``sampler.rescale_actions`` /
``action_scale``, :func:`metarl.rl.sb3_policy.sb3_env`), so a pretrained policy transfers to
the inner loop unchanged. With ``policy.normalize_obs`` the pretrained policy reads the
observations standardised with the run's fixed statistics, as the meta-learned policy does
(:func:`metarl.rl.sb3_policy.standardized_vec_env`); the oracle and RL², never converted into
a metarl policy, read them raw, as SB3's learners do by default.

Random streams: SB3 draws from the process-wide torch, numpy and ``random`` generators. A
private copy of those states, seeded from ``seed``, is swapped in around every SB3 call and
saved in checkpoints, so a run never disturbs the rest of the process and the same seed gives
the same run. A resumed run restarts the training envs' episodes (SB3 keeps them in memory
only), so it is not bit-for-bit the uninterrupted run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium
import numpy as np
import torch

from envs.wrappers import RL2Trial, TaskInObservation
from metarl.core import AdaptationCurve, summarize

from .config import RLConfig, SB3BaselineConfig
from .experiment import RLExperiment
from .sampling.backends import env_spec
from .sb3_policy import policy_from_sb3, sb3_env, sb3_policy_kwargs, standardized_vec_env
from .sb3_recurrent import FastRecurrentActorCriticPolicy
from .sb3_vec_env import BatchedSB3VecEnv


class GlobalRNGState:
    """A private copy of the process-wide torch, numpy and ``random`` states that SB3 draws
    from; :meth:`active` swaps it in and puts the process's own states back afterwards."""

    def __init__(self, seed: int) -> None:
        self.torch = torch.Generator().manual_seed(seed).get_state()
        self.numpy = np.random.RandomState(seed).get_state()
        self.python = random.Random(seed).getstate()

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
        torch.set_rng_state(self.torch)
        np.random.set_state(self.numpy)
        random.setstate(self.python)
        try:
            yield
        finally:
            self.torch, self.numpy, self.python = (
                torch.get_rng_state(),
                np.random.get_state(),
                random.getstate(),
            )
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = self.numpy
        return {
            "torch": self.torch.clone(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [self.python[0], list(self.python[1]), self.python[2]],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.torch = state["torch"].clone()
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        self.numpy = (kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), gauss)
        version, internal, gauss_next = state["python"]
        self.python = (version, tuple(internal), gauss_next)


def _learner_class(cfg: SB3BaselineConfig) -> type:
    if cfg.method == "rl2":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO
    if cfg.learner == "trpo":
        from sb3_contrib import TRPO

        return TRPO
    from stable_baselines3 import PPO

    return PPO


class SB3BaselineExperiment(RLExperiment):
    """A pretrained, oracle or RL² baseline on one task distribution (module docstring)."""

    progress_keys = ["train/return", "perf/env_steps_per_s"]

    def __init__(self, cfg: RLConfig) -> None:
        self.baseline: SB3BaselineConfig = cfg.algo  # type: ignore[assignment]
        super().__init__(cfg)
        b = self.baseline
        self.rng_state = GlobalRNGState(cfg.seed)
        self.train_env = self._make_train_envs()
        kwargs = dict(b.kwargs)
        kwargs.setdefault("gamma", b.gamma)
        if b.method != "rl2":
            # the network without the standardisation: the pretrained baseline's env applies it
            # (standardized_vec_env), the oracle reads raw observations
            network = cfg.policy.model_copy(update={"normalize_obs": False})
            kwargs["policy_kwargs"] = {
                **sb3_policy_kwargs(network),
                **kwargs.get("policy_kwargs", {}),
            }
        policy: Any = FastRecurrentActorCriticPolicy if b.method == "rl2" else "MlpPolicy"
        with self.rng_state.active():
            self.model = _learner_class(b)(
                policy, self.train_env, seed=cfg.seed, device="cpu", verbose=0, **kwargs
            )
        rollout = self.model.n_steps * b.num_envs
        if b.env_steps_per_iteration % rollout:
            raise ValueError(
                f"algo.env_steps_per_iteration ({b.env_steps_per_iteration}) must be a multiple "
                f"of one rollout, n_steps x num_envs = {self.model.n_steps} x {b.num_envs} = "
                f"{rollout}; change algo.env_steps_per_iteration or algo.kwargs.n_steps"
            )
        self._sync_policy()

    # -- pieces -------------------------------------------------------------------------------
    def _make_learner(self) -> None:
        return None  # SB3's model (built in __init__) trains this experiment's policy

    def _make_env(self) -> gymnasium.Env:
        """One env as the baseline sees it: policy-unit actions, then the oracle's task in the
        observation or RL²'s trials."""
        b = self.baseline
        env = gymnasium.make(
            self.cfg.env.id, max_episode_steps=self.sampler.horizon, **self.cfg.env.kwargs
        )
        env = sb3_env(env, self.cfg.sampler)
        if b.method == "oracle":
            env = TaskInObservation(env)
        elif b.method == "rl2":
            env = RL2Trial(env, b.episodes_per_trial)
        return env

    def _make_vec_env(self, num_envs: int) -> Any:
        """``num_envs`` copies as SB3 sees them: the family's batched env in one vectorised step
        (:class:`~metarl.rl.sb3_vec_env.BatchedSB3VecEnv`, with the oracle's observation or
        RL²'s trials) where it has one, else a ``DummyVecEnv`` of :meth:`_make_env`."""
        from stable_baselines3.common.vec_env import DummyVecEnv

        b = self.baseline
        if env_spec(self.cfg.env.id).vector_entry_point is None:
            return DummyVecEnv([self._make_env for _ in range(num_envs)])
        return BatchedSB3VecEnv(
            self.cfg.env.id,
            num_envs,
            self.sampler.horizon,
            self.cfg.env.kwargs,
            self.cfg.sampler,
            oracle=b.method == "oracle",
            episodes_per_trial=b.episodes_per_trial if b.method == "rl2" else None,
        )

    def _make_train_envs(self) -> Any:
        """SB3's training envs (:meth:`_make_vec_env`), monitored for the episode (RL²: trial)
        returns of the progress bar; the pretrained baseline's standardise observations."""
        from stable_baselines3.common.vec_env import VecMonitor

        venv = VecMonitor(self._make_vec_env(self.baseline.num_envs))
        return (
            standardized_vec_env(venv, self.policy)
            if self.baseline.method == "pretrained"
            else venv
        )

    def _sync_policy(self) -> None:
        """The pretrained SB3 policy's weights into the metarl policy that evaluate adapts."""
        if self.baseline.method == "pretrained":
            converted = policy_from_sb3(
                self.model.policy,
                observation_space=self.env.observation_space,
                action_space=self.env.action_space,
                sampler=self.cfg.sampler,
            )
            state = converted.state_dict()
            if self.policy.normalizes_obs:  # the statistics SB3's env standardised with
                state.update(obs_mean=self.policy.obs_mean, obs_std=self.policy.obs_std)
            self.policy.load_state_dict(state)

    # -- training -----------------------------------------------------------------------------
    def train_iteration(self, iteration: int) -> dict[str, float]:
        t0 = time.perf_counter()
        with self.rng_state.active():
            self.model.learn(
                self.baseline.env_steps_per_iteration, reset_num_timesteps=iteration == 0
            )
        seconds = time.perf_counter() - t0
        self.env_steps = (self.env_steps or 0) + self.baseline.env_steps_per_iteration
        self._sync_policy()
        self.iteration = iteration + 1
        episodes = list(self.model.ep_info_buffer)
        out = {
            "train/return": float(np.mean([e["r"] for e in episodes])) if episodes else 0.0,
            "perf/env_steps_per_s": self.baseline.env_steps_per_iteration / max(seconds, 1e-9),
            "time/iteration_s": seconds,
            "train/env_steps": float(self.env_steps),
        }
        return out

    # -- evaluation ---------------------------------------------------------------------------
    def _adaptation_curve(
        self, tasks: list[dict], noise_rng: np.random.Generator
    ) -> AdaptationCurve:
        """The evaluation behind :meth:`evaluate` (drawn tasks) and :meth:`evaluate_on` (listed
        ones, ``metarl evaluate --task-file``): ``pretrained``: MAML's adaptation curve (the same
        code); ``oracle``: one point, the return without adaptation; ``rl2``: the return of each
        episode of a trial; the oracle and RL² run their own SB3 model."""
        if self.baseline.method == "pretrained":
            return super()._adaptation_curve(tasks, noise_rng)
        returns = self._task_returns(tasks, _episode_seed(noise_rng))
        points = torch.tensor(returns.T, dtype=torch.float64)  # [points, tasks]
        return summarize("return", points, tasks=tasks)

    def eval_tasks(self, num_tasks: int | None, split: str) -> tuple[list[dict], int]:
        """The tasks of ``split`` that :meth:`evaluate` uses and the seed of its episodes."""
        tasks_rng, noise_rng = self._eval_rngs(split)
        tasks = self.task_env.sample_tasks(num_tasks or self.cfg.eval.tasks, tasks_rng)
        return tasks, _episode_seed(noise_rng)

    def _task_returns(self, tasks: list[dict], seed: int) -> np.ndarray:
        """``[tasks, points]``: the mean return over ``eval.episodes_per_task`` episodes
        (oracle: one point) or trials (RL²: one point per trial episode) on each task."""
        rewards = self.step_rewards(tasks, seed)  # [copies, points, steps]
        episodes = self.cfg.eval.episodes_per_task
        return rewards.sum(-1).reshape(len(tasks), episodes, rewards.shape[1]).mean(1)

    def step_rewards(self, tasks: list[dict], seed: int) -> np.ndarray:
        """``[copies, points, steps]``: the reward of every step of ``eval.episodes_per_task``
        episodes (oracle) or trials (RL²: one row per trial episode) on each task, copies
        task-major, zero after an episode's end; SB3's stochastic policy, every episode or
        trial one copy of one vectorised env. RL²'s rows show how soon in its first episode
        the policy finds the task (scripts/investigations/rl2_identification.py)."""
        with GlobalRNGState(seed).active():  # never advances the training streams
            return self._step_rewards(tasks, seed)

    def _step_rewards(self, tasks: list[dict], seed: int) -> np.ndarray:
        b = self.baseline
        episodes = self.cfg.eval.episodes_per_task
        points = b.episodes_per_trial if b.method == "rl2" else 1
        copies = [task for task in tasks for _ in range(episodes)]
        env = self._make_vec_env(len(copies))
        if isinstance(env, BatchedSB3VecEnv):
            env.set_tasks(copies)
        else:
            for i, task in enumerate(copies):
                env.env_method("set_task", task, indices=[i])
        env.seed(seed)
        obs = env.reset()
        rewards = np.zeros((len(copies), points, 256))
        episode = np.zeros(len(copies), dtype=np.int64)  # the trial episode each copy is in
        t = np.zeros(len(copies), dtype=np.int64)  # the step within that episode
        longest = 0
        finished = np.zeros(len(copies), dtype=bool)
        state, start = None, np.ones(len(copies), dtype=bool)
        while not finished.all():
            action, state = self.model.predict(
                obs, state=state, episode_start=start, deterministic=False
            )
            obs, reward, done, infos = env.step(action)
            live = np.flatnonzero(~finished)
            k = np.array([infos[i].get("episode_in_trial", 0) for i in live], dtype=np.int64)
            t[live] = np.where(k == episode[live], t[live], 0)  # a new episode starts at 0
            episode[live] = k
            if longest == rewards.shape[2]:  # every t <= longest: room for one more step
                rewards = np.concatenate([rewards, np.zeros_like(rewards)], axis=2)
            rewards[live, k, t[live]] = reward[live]
            t[live] += 1
            longest = max(longest, int(t[live].max()))
            finished |= done
            start = done
        env.close()
        return rewards[:, :, :longest]

    # -- checkpoints and summary --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        policy = self.model.policy
        return {
            **super().state_dict(),
            "sb3_policy": {k: v.detach().clone() for k, v in policy.state_dict().items()},
            "sb3_optimizer": policy.optimizer.state_dict(),
            "sb3_num_timesteps": int(self.model.num_timesteps),
            "sb3_n_updates": int(getattr(self.model, "_n_updates", 0)),
            "sb3_rng": self.rng_state.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.policy.load_state_dict(state["sb3_policy"])
        self.model.policy.optimizer.load_state_dict(state["sb3_optimizer"])
        self.model.num_timesteps = int(state["sb3_num_timesteps"])
        self.model._n_updates = int(state["sb3_n_updates"])
        self.rng_state.load_state_dict(state["sb3_rng"])
        self._sync_policy()

    def reference_curves(self) -> dict[str, list[float]]:
        return {}

    def describe(self) -> str:
        b = self.baseline
        learner = "recurrent_ppo" if b.method == "rl2" else b.learner
        return (
            f"baseline: {b.method} ({learner}, {b.num_envs} envs, "
            f"{b.env_steps_per_iteration} env steps per iteration)"
        )

    def summary_extra(self) -> dict[str, Any]:
        b = self.baseline
        return {
            **super().summary_extra(),
            "baseline": b.method,
            "learner": "recurrent_ppo" if b.method == "rl2" else b.learner,
            "env_steps": self.env_steps,
        }

    def close(self) -> None:
        self.train_env.close()
        super().close()


def _episode_seed(noise_rng: np.random.Generator) -> int:
    """The seed of an evaluation's SB3 episodes, drawn from the split's exploration-noise stream
    (one place, so :meth:`SB3BaselineExperiment.eval_tasks` names the seed the evaluation uses)."""
    return int(noise_rng.integers(2**31))
