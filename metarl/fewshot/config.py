"""The few-shot domain's config schema (``domain: fewshot``).

Example (``configs/fewshot/sinusoid_maml.yaml``)::

    domain: fewshot
    seed: 0
    task: {name: sinusoid, shots: 10, query: 10}
    model: {name: mlp, hidden_sizes: [40, 40]}
    algo: {name: maml, inner_lr: 0.01, inner_steps: 1, meta_batch_size: 25, outer_lr: 1.0e-3}
    train: {iterations: 70000}
    eval: {tasks: 600, steps: 10}
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from metarl.schema import StrictModel, TaskBatchingName, TrainConfig

DatasetName = Literal["sinusoid", "omniglot", "miniimagenet", "folder"]


class TaskConfig(StrictModel):
    """What one task is.

    ``name``: ``sinusoid`` (regression, amplitude U[0.1, 5], phase U[0, pi], x U[-5, 5]) or an
    image dataset (``omniglot``, ``miniimagenet``, ``folder``: N-way K-shot classification).
    ``ways``: classes per task (N; ignored for sinusoid). ``shots``: support examples per class
    (K; per task for sinusoid). ``query``: query examples per class (per task for sinusoid).
    ``data_root``: folder holding ``omniglot/``, ``miniimagenet/``... (default: ``$METARL_DATA``,
    else ``data``). ``folder``: the class-folder root for ``name: folder``. ``split``: class split
    (``vinyals`` or ``lake`` for Omniglot). ``rotations``: add 90/180/270-degree rotations of the
    training classes as new classes (Omniglot protocol). ``image_size``: side in pixels.
    ``cache_dir``: where decoded arrays are cached (default ``$METARL_CACHE`` or ``~/.cache/metarl``).
    """

    name: DatasetName = "sinusoid"
    ways: int = Field(default=5, ge=2)
    shots: int = Field(default=10, ge=1)
    query: int = Field(default=10, ge=1)
    data_root: str = Field(default_factory=lambda: os.environ.get("METARL_DATA", "data"))
    folder: str | None = None
    split: Literal["vinyals", "lake", "ratio"] = "vinyals"
    split_ratios: tuple[float, float, float] = (0.64, 0.16, 0.20)
    rotations: bool = True
    image_size: int | None = Field(default=None, ge=4)
    channels: Literal[1, 3] | None = None
    cache_dir: str | None = None


class ModelConfig(StrictModel):
    """The network: ``mlp`` (``hidden_sizes``, ReLU) or ``conv4`` (``filters``, ``pooling``:
    ``stride`` = stride-2 convs as in MAML's Omniglot, ``max`` = 2x2 max-pool as in
    MiniImagenet). ``normalization``: ``batch`` (transductive batch statistics, the papers'
    setting), ``group`` or ``none``."""

    name: Literal["mlp", "conv4"] = "mlp"
    hidden_sizes: list[int] = Field(default_factory=lambda: [40, 40])
    filters: int = Field(default=64, ge=1)
    pooling: Literal["stride", "max"] = "stride"
    normalization: Literal["batch", "group", "none"] = "batch"


class AlgoConfig(StrictModel):
    """The meta-learner.

    ``name``: ``maml`` (second order), ``fomaml`` (first order), ``metasgd`` (learned
    per-parameter inner step sizes), ``anil`` (adapt the head only), ``reptile``, ``protonets``.
    ``inner_lr``/``inner_steps``: the inner loop used in training. ``meta_batch_size``: tasks per
    outer step. ``outer_lr``: Adam step size for MAML-family and ProtoNets. ``task_batching``:
    ``vmap`` runs the tasks of a meta-batch in one vectorised call, ``loop`` one by one, ``auto``
    times both on the first batch and keeps the faster (the choice is written to summary.json).
    Reptile: ``inner_optimizer`` (``adam`` with beta1 = 0 as in the paper, or ``sgd``),
    ``meta_step`` linearly annealed to ``meta_step_final`` over training; ``train_shots``: support
    examples per class in training tasks (the code's ``--train-shots``; default ``task.shots``);
    ``inner_batch_size``: examples per inner step, drawn epoch by epoch from the support set
    (default: all of it); ``inner_state``: ``reset`` starts every task with a fresh Adam,
    ``carry`` keeps one Adam's moments across tasks and into evaluation (the authors' code).
    """

    name: Literal["maml", "fomaml", "metasgd", "anil", "reptile", "protonets"] = "maml"
    inner_lr: float = Field(default=0.01, gt=0)
    inner_steps: int = Field(default=1, ge=0)
    meta_batch_size: int = Field(default=25, ge=1)
    outer_lr: float = Field(default=1.0e-3, gt=0)
    task_batching: TaskBatchingName = "auto"
    inner_optimizer: Literal["sgd", "adam"] = "adam"
    meta_step: float = Field(default=1.0, gt=0, le=1)
    meta_step_final: float = Field(default=0.0, ge=0, le=1)
    train_shots: int | None = Field(default=None, ge=1)
    inner_batch_size: int | None = Field(default=None, ge=1)
    inner_state: Literal["reset", "carry"] = "reset"

    @model_validator(mode="after")
    def _reptile_only(self) -> AlgoConfig:
        if self.name != "reptile":
            for key, default in (
                ("train_shots", None),
                ("inner_batch_size", None),
                ("inner_state", "reset"),
            ):
                if getattr(self, key) != default:
                    raise ValueError(f"algo.{key} is a Reptile setting; remove it for {self.name}")
        if self.inner_state == "carry" and self.inner_optimizer != "adam":
            raise ValueError("algo.inner_state carry needs inner_optimizer adam (SGD has no state)")
        return self


class EvalConfig(StrictModel):
    """Held-out evaluation: ``tasks`` test tasks (``--eval-tasks`` overrides), adaptation curve
    after 0..``steps`` inner steps, ``query`` query examples per class (per task for sinusoid;
    default: the training value), evaluated ``batch_size`` tasks at a time. ``inner_batch_size``
    (Reptile): support examples per test-time inner step (the code's ``--eval-batch``; default:
    all of them)."""

    tasks: int = Field(default=600, ge=1)
    steps: int = Field(default=10, ge=0)
    query: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=50, ge=1)
    inner_batch_size: int | None = Field(default=None, ge=1)


class FewShotConfig(StrictModel):
    """A supervised few-shot experiment."""

    domain: Literal["fewshot"]
    seed: int = Field(0, ge=0)
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    train: TrainConfig
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _consistent(self) -> FewShotConfig:
        if self.task.name == "sinusoid" and self.model.name != "mlp":
            raise ValueError("task.name sinusoid needs model.name mlp (regression on x in R)")
        if self.algo.name == "protonets" and self.task.name == "sinusoid":
            raise ValueError("algo.name protonets is a classifier; use an image dataset")
        if self.eval.inner_batch_size is not None and self.algo.name != "reptile":
            raise ValueError(
                f"eval.inner_batch_size is a Reptile setting; remove it for {self.algo.name}"
            )
        if self.task.name == "folder" and not self.task.folder:
            raise ValueError("task.name folder needs task.folder: the root of <class>/<images>")
        return self
