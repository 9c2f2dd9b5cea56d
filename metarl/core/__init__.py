"""The shared meta-learning core (torch only): parameters as data, the inner loop, task batching
(loop or vmap), the MAML family, Reptile, and adaptation-curve statistics."""

from .adapt import adam_step, gradient_step
from .adaptation_curve import adaptation_curve
from .batching import MODES, choose_task_batching, map_tasks
from .curve_summary import AdaptationCurve, summarize
from .inner import InnerSpec
from .maml import MAML
from .optimizer_state import load_optimizer_state
from .params import (
    CPU,
    Params,
    detach_params,
    expand_params,
    functional,
    named_params,
    select_names,
    stack_params,
    unstack_params,
)
from .reptile import Reptile, adam_steps, reptile_update, sgd_steps

__all__ = [
    "CPU",
    "MAML",
    "MODES",
    "AdaptationCurve",
    "Params",
    "InnerSpec",
    "Reptile",
    "adam_step",
    "adam_steps",
    "adaptation_curve",
    "choose_task_batching",
    "detach_params",
    "expand_params",
    "functional",
    "load_optimizer_state",
    "gradient_step",
    "map_tasks",
    "named_params",
    "reptile_update",
    "select_names",
    "sgd_steps",
    "stack_params",
    "summarize",
    "unstack_params",
]
