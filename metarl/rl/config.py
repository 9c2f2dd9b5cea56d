"""The meta-RL config schema (``domain: rl``), validated by pydantic; unknown keys are errors.

Example (``configs/maml_trpo/navigation2d.yaml``)::

    domain: rl
    seed: 0
    train: {iterations: 100}
    env: {id: metarl/Navigation2D-v0}
    algo: {name: maml_trpo, meta_batch_size: 20, episodes_per_task: 20, inner_lr: 0.1}
    eval: {tasks: 40, steps: 3, episodes_per_task: 40}
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from metarl.schema import StrictModel, TrainConfig

from .sampling.backends import registered_task_envs


class EnvConfig(StrictModel):
    """The task distribution.

    ``id``: a registered Gymnasium id with the task API (``metarl/Navigation2D-v0``, ...);
    ``kwargs``: keyword arguments for ``gymnasium.make`` / ``make_vec``;
    ``horizon``: episode length (default: the id's registered ``max_episode_steps``).
    """

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    horizon: int | None = Field(default=None, gt=0)

    @field_validator("id")
    @classmethod
    def _registered(cls, value: str) -> str:
        import gymnasium

        ids = registered_task_envs()
        if value not in gymnasium.registry:
            raise ValueError(f"unknown environment id {value!r}; registered metarl ids: {ids}")
        return value


class PolicyConfig(StrictModel):
    """The MLP policy (Gaussian for Box actions, categorical for Discrete).

    ``hidden_sizes``: hidden layer widths (MAML paper: [100, 100]); ``activation``: ``relu``
    or ``tanh``; ``init_log_std``: initial log standard deviation of the Gaussian (paper: 0);
    ``init_seed``: seed of the initial weights alone (default: the run's ``seed``), to tell the
    initialisation's share of seed-to-seed spread from the rest (tasks, noise, resets).
    """

    hidden_sizes: list[int] = Field(default_factory=lambda: [100, 100])
    activation: Literal["relu", "tanh"] = "relu"
    init_log_std: float = 0.0
    init_seed: int | None = Field(None, ge=0)

    @field_validator("hidden_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(h <= 0 for h in value):
            raise ValueError(f"hidden sizes must be positive, got {value}")
        return value


class SamplerConfig(StrictModel):
    """How episodes are collected.

    ``backend``: ``batched`` (the env's native vector entry point), ``vector`` (Gymnasium
    ``SyncVectorEnv`` of single envs), ``process`` (worker processes, each running whole episodes
    of its share of the tasks), ``ray`` (the same workers as Ray actors, on a cluster), ``auto``
    (batched when the env has a native batched version, else ``process`` on a machine with more
    than one core, else ``vector``); the choice is printed at the start of training and written
    to ``summary.json``;
    ``num_workers``: workers of ``process`` (default: one per core) and ``ray`` (default: one per
    CPU of the cluster);
    ``address``: the Ray cluster for ``ray``: ``auto`` (the one ``ray start`` runs on this
    machine), ``host:port``, or unset to start a local Ray runtime;
    ``timeout_s``: longest a sampling phase may take on ``process``/``ray`` before the workers
    are declared stuck (default: no limit; a dead worker is noticed at once regardless);
    ``num_threads``: torch threads during in-process sampling (1 keeps MuJoCo's threads free);
    ``clip_actions``: clip Gaussian actions to the action space's bounds before stepping (as
    the MAML code's rllab ``NormalizedEnv``); log-probabilities use the unclipped action;
    ``rescale_actions``: the policy acts in [-1, 1] and actions are mapped affinely onto the
    action space's bounds before clipping (rllab's ``NormalizedEnv``, which the MAML code wraps
    every env in; a no-op for [-1, 1] boxes, x0.1 for Navigation2D);
    ``action_scale``: the policy acts in units this many times the env's: the env receives
    ``clip(a / action_scale)`` (before ``rescale_actions``' map), so the initial log-std of 0
    explores with standard deviation ``1 / action_scale`` in env units. 1 is the MAML code's
    setting (noise std 1 on HalfCheetah's [-1, 1] box, about a third of all action components
    clipped); pytorch-maml-rl v2, ProMP and garage use 10.
    """

    backend: Literal["auto", "batched", "vector", "process", "ray"] = "auto"
    num_workers: int | None = Field(default=None, gt=0)
    address: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    num_threads: int = Field(default=1, gt=0)
    clip_actions: bool = True
    rescale_actions: bool = False
    action_scale: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _worker_options(self) -> SamplerConfig:
        if self.address is not None and self.backend != "ray":
            raise ValueError(
                f"sampler.address is only used by backend: ray (backend is {self.backend!r}); "
                "set sampler.backend: ray or remove sampler.address"
            )
        if self.num_workers is not None and self.backend in ("batched", "vector"):
            raise ValueError(
                f"sampler.num_workers applies to the process and ray backends, not "
                f"{self.backend!r}; remove num_workers or set sampler.backend: process"
            )
        return self


class AlgoConfig(StrictModel):
    """The meta-learner and its inner loop.

    ============================ =========================================================
    key                          meaning
    ============================ =========================================================
    ``name``                     ``maml_trpo`` or ``reptile``
    ``meta_batch_size``          tasks per outer iteration (paper: 20 nav., 40 locomotion)
    ``episodes_per_task``        episodes per task per sampling round (paper: 20)
    ``inner_lr``                 inner policy-gradient step size alpha (paper: 0.1)
    ``inner_steps``              inner steps per task, each on freshly sampled episodes
    ``first_order``              MAML-TRPO: drop the second-order term of the inner step
    ``gamma`` / ``gae_lambda``   discount and GAE lambda (paper: 0.99 / 1.0)
    ``normalize_advantages``     per-task mean 0 / std 1 advantages (rllab's center_adv)
    ``max_kl``                   TRPO trust region on the mean KL (paper: 0.01)
    ``cg_iters`` / ``cg_damping`` conjugate gradient iterations and damping (10 / 1.0e-5)
    ``ls_max_steps``             line search candidates (15)
    ``ls_backtrack``             line search shrink factor (0.8)
    ``hvp_subsample``            fraction of each task's episodes used in TRPO's
                                 Hessian-vector products (1.0 = exact, the papers' setting;
                                 0.2 = OpenAI Baselines' TRPO); the gradient and the line
                                 search's KL test always use every episode
    ``epsilon``                  Reptile outer step size
    ``task_batching``            inner step over tasks: ``vmap``, ``loop``, ``auto`` (= vmap,
                                 faster for policy-gradient steps on this machine)
    ============================ =========================================================
    """

    name: Literal["maml_trpo", "reptile"] = "maml_trpo"
    meta_batch_size: int = Field(default=20, gt=0)
    episodes_per_task: int = Field(default=20, gt=0)
    inner_lr: float = Field(default=0.1, gt=0)
    inner_steps: int = Field(default=1, gt=0)
    first_order: bool = False
    gamma: float = Field(default=0.99, gt=0, le=1)
    gae_lambda: float = Field(default=1.0, ge=0, le=1)
    normalize_advantages: bool = True
    max_kl: float = Field(default=1.0e-2, gt=0)
    cg_iters: int = Field(default=10, gt=0)
    cg_damping: float = Field(default=1.0e-5, ge=0)
    ls_max_steps: int = Field(default=15, gt=0)
    ls_backtrack: float = Field(default=0.8, gt=0, lt=1)
    hvp_subsample: float = Field(default=1.0, gt=0, le=1)
    epsilon: float = Field(default=0.1, gt=0, le=1)
    task_batching: Literal["auto", "vmap", "loop"] = "auto"


class EvalConfig(StrictModel):
    """Adaptation curve on held-out tasks (a seed stream of their own).

    ``tasks``: test tasks (paper: 40); ``steps``: inner steps, the curve has ``steps + 1``
    points (paper: 3); ``episodes_per_task``: episodes per task per step (paper: 20; 40 for
    2D navigation); ``inner_lrs``: step size of each test-time step, the last one repeating
    (default: ``algo.inner_lr`` for every step; the MAML code's point-env test used 0.5 for
    the first step and 0.25 after). Also used by ``metarl adapt``.
    """

    tasks: int = Field(default=40, gt=0)
    steps: int = Field(default=3, ge=0)
    episodes_per_task: int = Field(default=20, gt=0)
    inner_lrs: list[float] | None = None

    @field_validator("inner_lrs")
    @classmethod
    def _positive_lrs(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(lr <= 0 for lr in value)):
            raise ValueError(f"inner_lrs must be a non-empty list of positive numbers, got {value}")
        return value


class RLConfig(StrictModel):
    """A meta-RL experiment: ``domain: rl`` plus the sections above; ``seed`` fixes every stream
    (task sampling, exploration noise, policy initialisation, evaluation tasks).

    ``train.num_threads`` is also applied (and restored) around ``train_iteration``,
    ``evaluate`` and ``adapt_to_tasks``; the configs set it to 1: on 2 busy cores one MAML-TRPO
    iteration ran 3.6x faster with 1 thread than with 2 (docs/RESULTS.md).
    """

    #: keys that were removed because they did not help: ``{key: (old default, why)}``. The run
    #: layer drops them at their old default (run directories written before the removal hold
    #: them) and refuses other values in one line that says why the key went.
    REMOVED_KEYS: ClassVar[dict[str, tuple[Any, str]]] = {
        "policy.init_output_scale": (
            1.0,
            "scaling the output layer's initial weights did not help on HalfCheetahDir (0.01: "
            "seed 4 -21.0 and seed 1 61.1 after one step, against 0.5 and 110.2; "
            "docs/RESULTS.md)",
        ),
        "algo.calibrate_step": (
            False,
            "rescaling TRPO's step to the measured KL did not help on HalfCheetahDir (seed 4 "
            "15.0 and seed 0 233.0 after one step, against 0.5 and 245.9; docs/RESULTS.md)",
        ),
    }

    domain: Literal["rl"] = "rl"
    seed: int = Field(0, ge=0)
    train: TrainConfig
    env: EnvConfig
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
