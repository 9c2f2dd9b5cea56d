"""Typed config primitives shared by the domains' schemas (pydantic v2, unknown keys rejected).

Each domain (``metarl.fewshot.config``, ``metarl.rl.config``) defines its own top-level model with
``domain: Literal[...]``; ``metarl.run.config`` loads YAML, applies ``--set`` overrides, picks the
model by ``domain`` and turns validation errors into one line that names the key, the value and
what is allowed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskBatchingName = Literal["auto", "vmap", "loop"]
DEVICE_FORMS = "auto, cpu, cuda or cuda:N (N: the GPU's index, e.g. cuda:1)"
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment, and no
    float field takes NaN or infinity (``max_kl: inf`` would pass a ``gt=0`` check)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TrainConfig(StrictModel):
    """The outer loop's budget and bookkeeping (same keys in every domain).

    ============================ =================================================
    key                          meaning
    ============================ =================================================
    ``iterations``               outer (meta) iterations; ``--iterations`` overrides
    ``log_every``                iterations between metric rows / TensorBoard points
    ``checkpoint_every``         iterations between checkpoints (``--resume`` point); a
                                 first SIGINT/SIGTERM also checkpoints (metarl.run.stop)
    ``keep_checkpoints_every``   iterations between checkpoints kept for good beside
                                 ``last.pt``, as ``checkpoints/iteration-N.pt`` (0, the
                                 default: none; a multiple of ``checkpoint_every``):
                                 ``metarl evaluate/adapt --checkpoint N`` reads them, and
                                 ``evaluate --checkpoint all`` gives a learning curve of
                                 held-out returns after the fact (rllab's snapshot gap)
    ``eval_every``               iterations between mid-run evaluations (0: only at the end)
    ``num_threads``              torch intra-op threads (default: torch's, the cores the
                                 process may run on, so ``taskset -c 0`` gives 1); the
                                 ``metarl`` command makes idle threads sleep, so runs
                                 sharing cores do not slow each other (metarl.threads)
    ``device``                   where models, learners, optimizer state and few-shot
                                 data live: ``auto`` (default: the GPU when
                                 ``torch.cuda.is_available()``, else the CPU), ``cpu``,
                                 ``cuda`` or ``cuda:N``; ``cuda`` on a machine without
                                 one is an error naming the fix (``train.device: cpu``).
                                 Checkpoints are saved on the CPU and load on any device;
                                 the device used is printed and written to summary.json.
                                 Meta-RL's learner computes there too; its envs step
                                 on the CPU (one transfer each way per sampling
                                 phase); the SB3 baselines train on the CPU
    ============================ =================================================
    """

    iterations: int = Field(gt=0)
    log_every: int = Field(default=10, gt=0)
    checkpoint_every: int = Field(default=100, gt=0)
    keep_checkpoints_every: int = Field(default=0, ge=0)
    eval_every: int = Field(default=0, ge=0)
    num_threads: int | None = Field(default=None, ge=1)
    device: str = "auto"

    @model_validator(mode="after")
    def _kept_are_periodic(self) -> TrainConfig:
        keep, every = self.keep_checkpoints_every, self.checkpoint_every
        if keep and keep % every:
            raise ValueError(
                f"keep_checkpoints_every ({keep}) must be a multiple of checkpoint_every "
                f"({every}): only the periodic checkpoints can be kept"
            )
        return self

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str) -> str:
        """The string form only; whether the machine has that device is checked when the run
        starts (``metarl.run.device.resolve_device``), so a GPU run's config still loads on a
        CPU machine."""
        name = value.strip().lower()
        if not _DEVICE.fullmatch(name):
            raise ValueError(f"must be {DEVICE_FORMS}")
        return name
