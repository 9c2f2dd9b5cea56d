"""Typed config primitives shared by the domains' schemas (pydantic v2, unknown keys rejected).

Each domain (``metarl.fewshot.config``, ``metarl.rl.config``) defines its own top-level model with
``domain: Literal[...]``; ``metarl.run.config`` loads YAML, applies ``--set`` overrides, picks the
model by ``domain`` and turns validation errors into one line that names the key, the value and
what is allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaskBatchingName = Literal["auto", "vmap", "loop"]


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
    ``checkpoint_every``         iterations between checkpoints (``--resume`` point)
    ``eval_every``               iterations between mid-run evaluations (0: only at the end)
    ``num_threads``              torch intra-op threads (default: torch's, all cores); 1 is
                                 fastest for small models on a busy machine
    ============================ =================================================
    """

    iterations: int = Field(gt=0)
    log_every: int = Field(default=10, gt=0)
    checkpoint_every: int = Field(default=100, gt=0)
    eval_every: int = Field(default=0, ge=0)
    num_threads: int | None = Field(default=None, ge=1)
