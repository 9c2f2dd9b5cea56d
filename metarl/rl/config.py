"""The meta-RL config schema (``domain: rl``), validated by pydantic; unknown keys are errors.

Example (``configs/maml_trpo/navigation2d.yaml``)::

    domain: rl
    seed: 0
    train: {iterations: 100}
    env: {id: metarl/Navigation2D-v0}
    algo: {name: maml_trpo, meta_batch_size: 20, episodes_per_task: 20, inner: {lr: 0.1}}
    eval: {tasks: 40, steps: 3, episodes_per_task: 40}
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from metarl.core import InnerSpec
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
    initialisation's share of seed-to-seed spread from the rest (tasks, noise, resets);
    ``normalize_obs``: standardise each observation dimension with a mean and std measured once,
    before training, on 20 episodes of random actions, then fixed and saved with the policy
    (:mod:`metarl.rl.obs_statistics`; default false: raw observations, as the MAML code).
    """

    hidden_sizes: list[int] = Field(default_factory=lambda: [100, 100])
    activation: Literal["relu", "tanh"] = "relu"
    init_log_std: float = 0.0
    init_seed: int | None = Field(None, ge=0)
    normalize_obs: bool = False

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
    ``num_threads``: torch threads during in-process sampling (default: the run's, where idle
    OpenMP threads sleep as under the ``metarl`` command, else 1, which keeps MuJoCo's threads
    free; :mod:`metarl.rl.sampling.sampler`);
    ``clip_actions``: clip Gaussian actions to the action space's bounds before stepping (as
    the MAML code's rllab ``NormalizedEnv``); log-probabilities use the unclipped action;
    ``rescale_actions``: the policy acts in [-1, 1] and actions are mapped affinely onto the
    action space's bounds before clipping (rllab's ``NormalizedEnv``, which the MAML code wraps
    every env in; a no-op for [-1, 1] boxes, x0.1 for Navigation2D);
    ``action_scale``: the policy acts in units this many times the env's: the env receives
    ``clip(a / action_scale)`` (before ``rescale_actions``' map), so the initial log-std of 0
    explores with standard deviation ``1 / action_scale`` in env units. 1 is the MAML code's
    setting (noise std 1 on HalfCheetah's [-1, 1] box, about a third of all action components
    clipped); pytorch-maml-rl v2, ProMP and garage use 10. It stays an option to reproduce
    those implementations (ProMP's tasks are defined with it); on HalfCheetahDir with the MAML
    code's other settings 10 learned far more slowly than 1 (docs/RESULTS.md);
    ``budget``: what bounds each task's batch of episodes (training and evaluation):
    ``episodes`` runs exactly ``episodes_per_task`` episodes per task; ``steps`` runs whole
    episodes until the task has ``episodes_per_task x horizon`` env steps and keeps those (the
    MAML and ProMP code's samplers: where episodes end early, as Ant's, Hopper's and Walker2d's
    do, a task's batch holds more, shorter episodes; the same as ``episodes`` where no episode
    ends early).
    """

    backend: Literal["auto", "batched", "vector", "process", "ray"] = "auto"
    num_workers: int | None = Field(default=None, gt=0)
    address: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    num_threads: int | None = Field(default=None, gt=0)
    clip_actions: bool = True
    rescale_actions: bool = False
    action_scale: float = Field(default=1.0, gt=0)
    budget: Literal["episodes", "steps"] = "episodes"

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


class InnerConfig(StrictModel):
    """The inner loop (``algo.inner``), the same settings as few-shot MAML's.

    ``lr``: the policy-gradient step size alpha (paper: 0.1), or one per step (a schedule, the
    last repeating); ``steps``: inner steps per task, each on freshly sampled episodes;
    ``first_order``: drop the steps' second-order term in MAML-TRPO's and ProMP's
    meta-gradient (FOMAML);
    ``learn_lr``: Meta-SGD (Li et al. 2017): per-parameter step sizes initialised at ``lr`` and
    meta-learned by MAML-TRPO with the policy; ``adapt``: ``all`` parameters adapt, or only the
    ``head`` (ANIL, Raghu et al. 2020: the policy's output layer; the trunk and log-std are
    meta-learned only); ``optimizer``: ``sgd`` steps, or ``adam`` (Reptile only: first-order
    Adam steps with beta1 = 0, as the Reptile paper's inner optimizer, moments fresh per task
    and carried across its inner steps).
    """

    lr: float | list[float] = 0.1
    steps: int = Field(default=1, gt=0)
    first_order: bool = False
    learn_lr: bool = False
    adapt: Literal["all", "head"] = "all"
    optimizer: Literal["sgd", "adam"] = "sgd"

    @model_validator(mode="after")
    def _valid_for_the_core(self) -> InnerConfig:
        """The core's :class:`InnerSpec` checks the settings (positive step sizes, no schedule
        with learned step sizes); its message is the error."""
        InnerSpec(
            lr=tuple(self.lr) if isinstance(self.lr, list) else self.lr,
            first_order=self.first_order or self.optimizer == "adam",
            learn_lr=self.learn_lr,
            names=("head",) if self.adapt == "head" else None,
            optimizer=self.optimizer,
        )
        return self


class _InnerLoopSettings(StrictModel):
    """The inner loop and its policy-gradient settings (see :class:`MAMLTRPOConfig`): what
    every ``algo`` adapts with, meta-learned or not."""

    inner: InnerConfig = Field(default_factory=InnerConfig)
    gamma: float = Field(default=0.99, gt=0, le=1)
    gae_lambda: float = Field(default=1.0, ge=0, le=1)
    normalize_advantages: bool = True
    task_batching: Literal["auto", "vmap", "loop"] = "auto"


class _PolicyGradientAlgo(_InnerLoopSettings):
    """Settings shared by the meta-RL learners (see :class:`MAMLTRPOConfig`)."""

    meta_batch_size: int = Field(default=20, gt=0)
    episodes_per_task: int = Field(default=20, gt=0)


class MAMLTRPOConfig(_PolicyGradientAlgo):
    """``algo`` with ``name: maml_trpo``: MAML with a TRPO outer step.

    ============================ =========================================================
    key                          meaning
    ============================ =========================================================
    ``meta_batch_size``          tasks per outer iteration (paper: 20 nav., 40 locomotion)
    ``episodes_per_task``        episodes per task per sampling round (paper: 20)
    ``inner``                    the inner loop (:class:`InnerConfig`)
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
    ``task_batching``            inner step over tasks: ``vmap``, ``loop``, ``auto`` (= vmap,
                                 faster for policy-gradient steps on this machine)
    ============================ =========================================================
    """

    name: Literal["maml_trpo"] = "maml_trpo"
    max_kl: float = Field(default=1.0e-2, gt=0)
    cg_iters: int = Field(default=10, gt=0)
    cg_damping: float = Field(default=1.0e-5, ge=0)
    ls_max_steps: int = Field(default=15, gt=0)
    ls_backtrack: float = Field(default=0.8, gt=0, lt=1)
    hvp_subsample: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _differentiable_inner_steps(self) -> MAMLTRPOConfig:
        if self.inner.optimizer != "sgd":
            raise ValueError(
                "MAML-TRPO differentiates through SGD inner steps; algo.inner.optimizer "
                f"{self.inner.optimizer} is Reptile's: use sgd, or algo.name reptile"
            )
        return self


class ReptileConfig(_PolicyGradientAlgo):
    """``algo`` with ``name: reptile``: the shared settings (:class:`MAMLTRPOConfig`) and
    ``epsilon``, the outer step size ``theta += epsilon * mean_i(phi_i - theta)``. Its inner
    steps keep no graph, so ``inner.first_order`` does not apply, nor ``inner.learn_lr``;
    ``inner.optimizer: adam`` takes them with Adam (the Reptile paper's inner optimizer)."""

    name: Literal["reptile"] = "reptile"
    epsilon: float = Field(default=0.1, gt=0, le=1)

    @model_validator(mode="after")
    def _no_meta_sgd(self) -> ReptileConfig:
        if self.inner.learn_lr:
            raise ValueError("Reptile does not learn step sizes; remove algo.inner.learn_lr")
        return self


class ProMPConfig(_PolicyGradientAlgo):
    """``algo`` with ``name: promp``: ProMP (Rothfuss et al. 2019), the LVC inner step and a
    clipped outer objective with a KL penalty, maximised by Adam (:mod:`metarl.rl.algos.promp`).
    Defaults: the authors' run scripts (``jonasrothfuss/ProMP``,
    ``run_scripts/pro-mp_run_mujoco.py`` and ``pro-mp_run_point_mass.py``, the same ProMP
    settings in both).

    ============================== =======================================================
    key                            meaning
    ============================== =======================================================
    ``meta_batch_size``            tasks per outer iteration (authors: 40)
    ``episodes_per_task``          episodes per task per sampling round (authors: 20)
    ``inner``                      the inner loop (:class:`InnerConfig`): SGD steps of the
                                   LVC objective (authors: lr 0.1, 1 step); no learned
                                   step sizes, no Adam steps
    ``gamma`` / ``gae_lambda``     discount and GAE lambda (authors: 0.99 / 1.0)
    ``normalize_advantages``       per-task mean 0 / std 1 advantages (authors: true)
    ``num_ppo_steps``              Adam steps on the outer objective per meta-batch,
                                   without resampling (authors: 5)
    ``clip_eps``                   clip range of the outer likelihood ratio (authors: 0.3;
                                   their ProMP class defaults to 0.2)
    ``learning_rate``              the outer Adam step size beta (authors: 1e-3)
    ``init_inner_kl_penalty``      eta, the coefficient of KL(pi_theta_o || pi_theta) on the
                                   pre-update episodes, one per inner step (authors: 5e-4;
                                   class default 1e-2)
    ``adaptive_inner_kl_penalty``  after each meta-batch halve eta where that KL is below
                                   ``target_inner_step / 1.5``, double it above
                                   ``1.5 * target_inner_step`` (authors: false; class
                                   default true)
    ``target_inner_step``          the KL target of the adaptive penalty (authors: 0.01)
    ``task_batching``              inner steps over tasks: ``vmap``, ``loop``, ``auto``
                                   (= vmap)
    ============================== =======================================================
    """

    name: Literal["promp"] = "promp"
    num_ppo_steps: int = Field(default=5, gt=0)
    clip_eps: float = Field(default=0.3, gt=0, lt=1)
    learning_rate: float = Field(default=1.0e-3, gt=0)
    init_inner_kl_penalty: float = Field(default=5.0e-4, ge=0)
    adaptive_inner_kl_penalty: bool = False
    target_inner_step: float = Field(default=1.0e-2, gt=0)

    @model_validator(mode="after")
    def _differentiable_inner_steps(self) -> ProMPConfig:
        if self.inner.optimizer != "sgd":
            raise ValueError(
                "ProMP differentiates through SGD inner steps; algo.inner.optimizer "
                f"{self.inner.optimizer} is Reptile's: use sgd, or algo.name reptile"
            )
        if self.inner.learn_lr:
            raise ValueError(
                "ProMP does not learn inner step sizes (learn_lr is Meta-SGD's, in MAML-TRPO): "
                "remove algo.inner.learn_lr, or use algo.name maml_trpo"
            )
        return self


class SB3Training(StrictModel):
    """How a Stable-Baselines3 baseline trains: the keys of :class:`SB3BaselineConfig` that a
    ``metarl baselines`` config sets per method (``metarl.run.baselines.BaselineBudget``)."""

    learner: Literal["trpo", "ppo"] = "trpo"
    num_envs: int = Field(default=20, gt=0)
    env_steps_per_iteration: int = Field(default=160_000, gt=0)
    episodes_per_trial: int = Field(default=2, gt=0)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kwargs")
    @classmethod
    def _not_ours(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = {"policy", "env", "seed", "device", "verbose"} & set(value)
        if owned:
            raise ValueError(
                f"algo.kwargs {sorted(owned)} are set by metarl (policy, env, seed, device, "
                "verbose); remove them (the seed is the config's `seed`)"
            )
        return value


class SB3BaselineConfig(_InnerLoopSettings, SB3Training):
    """``algo`` with ``name: sb3``: a non-meta baseline trained by Stable-Baselines3 on the
    task distribution, then evaluated on MAML's held-out tasks (:mod:`metarl.rl.sb3_baseline`).

    =========================== ==========================================================
    key                         meaning
    =========================== ==========================================================
    ``method``                  ``pretrained`` (one policy for every task, adapted at test
                                time by ``inner`` like MAML), ``oracle`` (the task in the
                                observation, not adapted) or ``rl2`` (RecurrentPPO on
                                trials of ``episodes_per_trial`` episodes of one task)
    ``learner``                 ``trpo`` (sb3-contrib, the MAML paper's) or ``ppo``;
                                ``rl2`` always uses sb3-contrib's ``RecurrentPPO``
    ``num_envs``                envs stepped together by SB3 (``DummyVecEnv``)
    ``env_steps_per_iteration`` env steps per run iteration (a multiple of SB3's rollout,
                                ``n_steps x num_envs``); set it to MAML's per-iteration
                                steps to compare at equal budgets
    ``episodes_per_trial``      RL²'s trial length K in episodes
    ``kwargs``                  keyword arguments of the SB3 algorithm (``n_steps``,
                                ``batch_size``, ``learning_rate``, ...; ``gamma`` defaults
                                to this section's)
    ``inner``, ``gamma``, ...   how ``pretrained`` adapts at test time (as MAML's config)
    =========================== ==========================================================
    """

    name: Literal["sb3"] = "sb3"
    method: Literal["pretrained", "oracle", "rl2"] = "pretrained"


AlgoConfig = Annotated[
    MAMLTRPOConfig | ReptileConfig | ProMPConfig | SB3BaselineConfig, Field(discriminator="name")
]
ALGOS: dict[str, type[_InnerLoopSettings]] = {
    "maml_trpo": MAMLTRPOConfig,
    "reptile": ReptileConfig,
    "promp": ProMPConfig,
    "sb3": SB3BaselineConfig,
}


class EvalConfig(StrictModel):
    """Adaptation curve on held-out tasks (a seed stream of their own).

    ``tasks``: test tasks (paper: 40); ``steps``: inner steps, the curve has ``steps + 1``
    points (paper: 3); ``episodes_per_task``: episodes per task per step (paper: 20; 40 for
    2D navigation); ``inner_lrs``: step size of each test-time step, the last one repeating
    (default: ``algo.inner.lr``'s; the MAML code's point-env test used 0.5 for
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

    ``train.num_threads`` unset uses torch's default, the cores the process may run on (a run
    pinned with ``taskset -c 0`` gets 1). Under the ``metarl`` command idle threads sleep
    (:mod:`metarl.threads`), so two runs sharing 2 cores lose nothing to a second thread: one
    HalfCheetahVel iteration took 3.4 s alone with 2 threads against 6.0 s with 1, and 6.1 s
    beside a second run either way (docs/RESULTS.md, "Threads").
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
    algo: AlgoConfig = Field(default_factory=MAMLTRPOConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _test_time_steps(self) -> RLConfig:
        if self.algo.inner.learn_lr and self.eval.inner_lrs is not None:
            raise ValueError(
                "eval.inner_lrs replaces the step sizes at test time, but algo.inner.learn_lr "
                "adapts with the learned ones; remove eval.inner_lrs"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return cls.upgrade(data) if isinstance(data, dict) else data

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Bring a raw config written before ``algo.inner`` and the per-algorithm ``algo``
        schemas up to date (old config files and run directories keep loading); raises
        ``ValueError`` naming the key to change where the old form is ambiguous."""
        algo = data.get("algo")
        if not isinstance(algo, dict):
            return data
        algo = dict(algo)
        name = algo.setdefault("name", "maml_trpo")
        if name not in ALGOS:
            return {**data, "algo": algo}  # the schema names the valid choices
        for old, new in FLAT_INNER_KEYS.items():
            if old in algo:
                inner = dict(algo.get("inner") or {})
                if new in inner:
                    raise ValueError(
                        f"`algo.{old}` and `algo.inner.{new}` are both set; keep `algo.inner.{new}`"
                    )
                inner[new] = algo.pop(old)
                algo["inner"] = inner
        fields = ALGOS[name].model_fields
        for other, schema in ALGOS.items():
            for key, field in schema.model_fields.items():
                if other == name or key in fields or key not in algo:
                    continue
                if algo[key] != field.default:
                    raise ValueError(f"`algo.{key}` is a setting of {other}, not {name}; remove it")
                del algo[key]  # written at its default by a run directory of an older version
        return {**data, "algo": algo}


#: the inner-loop keys that ``algo`` held before ``algo.inner`` (old name -> new name)
FLAT_INNER_KEYS = {"inner_lr": "lr", "inner_steps": "steps", "first_order": "first_order"}
