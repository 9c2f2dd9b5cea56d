"""Task batching (map_tasks, choose_task_batching) and the parameter-dict helpers."""

import pytest
import torch
from torch import nn

from metarl.core import (
    choose_task_batching,
    expand_params,
    functional,
    map_tasks,
    named_params,
    select_names,
    stack_params,
    unstack_params,
)


# ---------------------------------------------------------------------------------------------
# map_tasks
# ---------------------------------------------------------------------------------------------
def pytree_fn(params, data):
    # per task: (sum of w * x, {"max": max(x), "scaled": w * x})  -- a tuple of tensor and dict
    x = data["x"]
    wx = params["w"] * x
    return wx.sum(), {"max": x.max(), "scaled": wx}


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_map_tasks_pytree_outputs(mode):
    params = {"w": torch.tensor([1.0, 2.0, 3.0])}  # shared (in_dims None)
    data = {"x": torch.arange(12.0).reshape(4, 3)}  # 4 tasks
    total, extra = map_tasks(pytree_fn, params, data, in_dims=(None, 0), mode=mode)
    assert isinstance(extra, dict) and set(extra) == {"max", "scaled"}
    expected_scaled = params["w"] * data["x"]
    torch.testing.assert_close(total, expected_scaled.sum(1))
    torch.testing.assert_close(extra["max"], data["x"].max(1).values)
    torch.testing.assert_close(extra["scaled"], expected_scaled)


def test_map_tasks_loop_equals_vmap_with_grad():
    # a meta-gradient through map_tasks is the same in both modes
    w = torch.randn(3, requires_grad=True)
    x = torch.randn(5, 3)

    def task_loss(w, xi):
        g = torch.func.grad(lambda w: (w * xi).sum() ** 2)(w)
        return ((w - 0.1 * g) ** 2).sum()

    grads = []
    for mode in ("loop", "vmap"):
        (g,) = torch.autograd.grad(
            map_tasks(task_loss, w, x, in_dims=(None, 0), mode=mode).mean(), w
        )
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("mode", ["auto", "Loop", "pmap", ""])
def test_map_tasks_rejects_unknown_mode(mode):
    with pytest.raises(ValueError, match="'vmap' or 'loop'"):
        map_tasks(lambda x: x, torch.ones(2, 3), in_dims=(0,), mode=mode)


def test_map_tasks_argument_checks():
    with pytest.raises(ValueError, match="in_dims"):
        map_tasks(lambda x, y: x, torch.ones(2), torch.ones(2), in_dims=(0,), mode="loop")
    with pytest.raises(ValueError, match="task dimension"):
        map_tasks(lambda x: x, torch.ones(2), in_dims=(None,), mode="loop")


# ---------------------------------------------------------------------------------------------
# choose_task_batching: times both modes (one untimed warm-up each), returns the faster
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("slow", ["loop", "vmap"])
def test_choose_task_batching_picks_faster_mode(slow):
    """A fake clock: each call of the slow mode costs 5 units, the fast one 1, except a burst
    of load (+100) on one timed call of the fast mode, which the minimum must ignore."""
    now, calls = [0.0], []

    def run(mode):
        calls.append(mode)
        now[0] += 5.0 if mode == slow else 1.0
        if mode != slow and calls.count(mode) == 2:  # the first timed call of the fast mode
            now[0] += 100.0

    mode, timings = choose_task_batching(run, repeats=2, clock=lambda: now[0])
    fast = "vmap" if slow == "loop" else "loop"
    assert mode == fast and timings == {slow: 5.0, fast: 1.0}
    assert sorted(calls) == ["loop"] * 3 + ["vmap"] * 3  # warm-up + 2 timed repeats each


def test_choose_task_batching_on_a_real_meta_loss():
    from metarl.core import MAML

    model = nn.Linear(2, 1)

    def loss_fn(params, data):
        x, y = data
        pred = torch.func.functional_call(model, params, (x,)).squeeze(-1)
        return ((pred - y) ** 2).mean(), {}

    maml = MAML(model, loss_fn, 0.1)
    s = (torch.randn(3, 4, 2), torch.randn(3, 4))
    q = (torch.randn(3, 4, 2), torch.randn(3, 4))

    def run(mode):
        torch.autograd.grad(maml.meta_loss(s, q, mode=mode)[0], list(maml.parameters()))

    mode, timings = choose_task_batching(run, repeats=1)
    assert set(timings) == {"vmap", "loop"} and all(t > 0 for t in timings.values())
    assert timings[mode] == min(timings.values())  # the mode it picks is the faster one
    assert all(p.grad is None for p in maml.parameters())


# ---------------------------------------------------------------------------------------------
# params helpers
# ---------------------------------------------------------------------------------------------
def test_select_names():
    params = {"body.0.weight": 0, "body.0.bias": 0, "head.weight": 0, "head.bias": 0}
    assert select_names(params, None) == list(params)
    assert select_names(params, ["head."]) == ["head.weight", "head.bias"]
    assert select_names(params, lambda n: n.endswith("bias")) == ["body.0.bias", "head.bias"]
    with pytest.raises(ValueError, match="selects none"):
        select_names(params, ["neck."])
    with pytest.raises(ValueError, match="selects none"):
        select_names(params, lambda n: False)


def test_stack_unstack_expand_and_functional():
    model = nn.Linear(3, 2)
    theta = named_params(model)
    assert set(theta) == {"weight", "bias"} and theta["weight"] is model.weight
    per_task = [{k: v.detach() + i for k, v in theta.items()} for i in range(4)]
    stacked = stack_params(per_task)
    assert stacked["weight"].shape == (4, 2, 3)
    for a, b in zip(unstack_params(stacked), per_task):
        assert all(torch.equal(a[k], b[k]) for k in b)
    expanded = expand_params(theta, 5)
    assert expanded["bias"].shape == (5, 2)
    assert torch.equal(expanded["bias"][3], model.bias.detach())
    with pytest.raises(ValueError):
        stack_params([])
    f = functional(model)
    x = torch.randn(7, 3)
    new = {"weight": torch.zeros(2, 3), "bias": torch.ones(2)}
    torch.testing.assert_close(f(new, x), torch.ones(7, 2))
    torch.testing.assert_close(f(theta, x), model(x))
