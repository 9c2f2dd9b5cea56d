"""Parameters as data: dicts of tensors, called through ``torch.func.functional_call``.

A model's weights are never copied or patched. Adapted weights are new dicts that share the
autograd graph with the originals, so a meta-gradient flows through them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]
#: the host device, where data starts and checkpoints are saved
CPU = torch.device("cpu")


def named_params(module: nn.Module) -> Params:
    """The module's trainable parameters as a ``{name: tensor}`` dict (the live tensors)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def functional(module: nn.Module) -> Callable[..., Tensor]:
    """Return ``f(params, *inputs)`` that runs ``module`` with ``params`` in place of its own."""

    def call(params: Mapping[str, Tensor], *inputs: Tensor) -> Tensor:
        return torch.func.functional_call(module, dict(params), inputs)

    return call


def detach_params(params: Mapping[str, Tensor]) -> Params:
    return {k: v.detach() for k, v in params.items()}


def stack_params(params: Iterable[Mapping[str, Tensor]]) -> Params:
    """Stack per-task dicts into one dict of ``[tasks, ...]`` tensors."""
    items = list(params)
    if not items:
        raise ValueError("stack_params needs at least one parameter dict")
    return {k: torch.stack([p[k] for p in items]) for k in items[0]}


def unstack_params(params: Mapping[str, Tensor]) -> list[Params]:
    """Inverse of :func:`stack_params`."""
    n = next(iter(params.values())).shape[0]
    return [{k: v[i] for k, v in params.items()} for i in range(n)]


def expand_params(params: Mapping[str, Tensor], n: int) -> Params:
    """Repeat shared parameters along a new leading task dimension (a view, no copy)."""
    return {k: v.unsqueeze(0).expand(n, *v.shape) for k, v in params.items()}


def select_names(
    params: Mapping[str, Tensor], keep: Callable[[str], bool] | Iterable[str] | None
) -> list[str]:
    """Names of the parameters that ``keep`` selects (all when ``keep`` is None).

    ``keep`` is a predicate on the name, or a collection of name prefixes (``["head."]``).
    """
    if keep is None:
        return list(params)
    if callable(keep):
        names = [n for n in params if keep(n)]
    else:
        prefixes = tuple(keep)
        names = [n for n in params if n.startswith(prefixes)]
    if not names:
        raise ValueError(
            f"the parameter filter selects none of the parameters {sorted(params)}; "
            "give a prefix of at least one of them"
        )
    return names
