"""Where a run computes: ``train.device`` resolved to a ``torch.device``, its readable name, and
checkpoint state moved between devices.

``metarl.core`` and the domains never read the config: the run layer resolves the device here
and hands the domain a ``torch.device``.
"""

from __future__ import annotations

import platform
from collections import OrderedDict
from typing import Any

import torch

from metarl.core import CPU

from .errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a ``torch.device`` this machine has.

    ``auto`` is the GPU when ``torch.cuda.is_available()``, else the CPU. A CUDA device the
    machine lacks is a :class:`UserError` that names the fix.
    """
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return CPU
    if not name.startswith("cuda"):
        raise UserError(f"`train.device` = {name!r}: must be auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise UserError(
            f"`train.device` = {name!r}, but torch ({torch.__version__}, {build}) finds no CUDA "
            "GPU on this machine; set `train.device: cpu` (or `auto`), e.g. "
            "`--set train.device=cpu` (`--device cpu` for evaluate and adapt)"
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise UserError(
            f"`train.device` = {name!r}, but this machine has {count} CUDA device(s) "
            f"(cuda:0..cuda:{count - 1}); set `train.device: cuda:0` or `auto`"
        )
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def device_name(device: torch.device) -> str:
    """A readable name: the GPU's (``NVIDIA H200``), or the CPU's architecture and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"{platform.machine() or 'unknown'} CPU, {threads} torch thread{'s' * (threads > 1)}"
    return device.type


def describe_device(device: torch.device) -> str:
    """The line a run prints once at the start: ``device: cuda:0 (NVIDIA H200)``."""
    return f"device: {device} ({device_name(device)})"


def device_summary(device: torch.device) -> dict[str, str]:
    """The ``device`` and ``device_name`` entries of ``summary.json``."""
    return {"device": str(device), "device_name": device_name(device)}


def to_device(state: Any, device: torch.device | str) -> Any:
    """Every tensor in a nested state (dicts, lists, tuples) moved to ``device``; other values
    as they are, containers of the same kind (a module state dict keeps its ``_metadata``).
    Checkpoints are saved through ``to_device(state, "cpu")``, so they load on a machine
    without the run's GPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to(device)
    if isinstance(state, dict):
        moved = {k: to_device(v, device) for k, v in state.items()}
        if isinstance(state, OrderedDict):
            moved = OrderedDict(moved)
            metadata = getattr(state, "_metadata", None)
            if metadata is not None:
                moved._metadata = metadata  # type: ignore[attr-defined]
        return moved
    if isinstance(state, list | tuple) and not hasattr(state, "_fields"):
        return type(state)(to_device(v, device) for v in state)
    return state
