"""A torch optimizer's state loaded from a checkpoint written on any device."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)`` for a state saved on any device: the moments follow
    the parameters (torch moves them); the step counts stay on the CPU, where Adam keeps them
    when it is neither capturable nor fused."""
    optimizer.load_state_dict(state)
    for param_state in optimizer.state.values():
        step = param_state.get("step")
        if isinstance(step, Tensor) and step.device.type != "cpu":
            param_state["step"] = step.cpu()
