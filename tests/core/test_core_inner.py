"""InnerSpec: step sizes by step, Meta-SGD tensors, ANIL's frozen parameters, checked against
steps written out by hand on a quadratic loss (gradient of 0.5 * sum(c * p^2) is c * p)."""

import pytest
import torch

from metarl.core import InnerSpec

C = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0])}


def loss(p):
    return sum(0.5 * (C[k] * p[k] ** 2).sum() for k in p)


def params():
    return {"a": torch.tensor([1.0, -1.0]), "b": torch.tensor([2.0])}


def test_schedule_uses_each_step_size_then_repeats_the_last():
    out = InnerSpec(lr=(0.1, 0.05), steps=3).adapt(loss, params())
    for k in out:
        expected = params()[k]
        for lr in (0.1, 0.05, 0.05):
            expected = expected - lr * C[k] * expected
        torch.testing.assert_close(out[k], expected)


def test_learned_step_sizes_are_per_parameter_tensors():
    spec = InnerSpec(lr=0.1, steps=1, learn_lr=True)
    learned = spec.init_lrs(params())
    assert all(torch.equal(v, torch.full_like(params()[k], 0.1)) for k, v in learned.items())
    learned["a"] = torch.tensor([0.5, 0.0])
    out = spec.adapt(loss, params(), learned)
    torch.testing.assert_close(out["a"], params()["a"] - learned["a"] * C["a"] * params()["a"])
    torch.testing.assert_close(out["b"], params()["b"] - 0.1 * C["b"] * params()["b"])


def test_names_adapt_only_those_parameters():
    out = InnerSpec(lr=0.1, steps=2, names=("b",)).adapt(loss, params())
    assert torch.equal(out["a"], params()["a"])
    torch.testing.assert_close(out["b"], params()["b"] * (1 - 0.1 * C["b"]) ** 2)


def test_second_order_keeps_the_graph_first_order_does_not():
    theta = {k: v.requires_grad_() for k, v in params().items()}
    for first_order, expected in ((False, 1 - 0.1 * C["b"]), (True, torch.ones(1))):
        out = InnerSpec(lr=0.1, first_order=first_order).adapt(loss, theta)
        (grad,) = torch.autograd.grad(out["b"].sum(), theta["b"])
        torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": 0.0}, "positive"),
        ({"lr": (0.1, -0.1)}, "positive"),
        ({"lr": 0.1, "steps": -1}, "steps"),
        ({"lr": (0.1, 0.05), "learn_lr": True}, "schedule"),
    ],
)
def test_invalid_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InnerSpec(**kwargs)


def test_learn_lr_without_learned_step_sizes_is_refused():
    with pytest.raises(ValueError, match="init_lrs"):
        InnerSpec(lr=0.1, learn_lr=True).adapt(loss, params())


def test_adam_steps_equal_torch_optim_adam_and_thread_their_state():
    """Adam inner steps (beta1 = 0, the Reptile paper's) against ``torch.optim.Adam`` on the same
    loss: three steps with the state threaded from one to the next."""
    spec = InnerSpec(lr=0.1, steps=3, first_order=True, optimizer="adam")
    leaves = {k: v.clone().requires_grad_() for k, v in params().items()}
    reference = torch.optim.Adam(leaves.values(), lr=0.1, betas=(0.0, 0.999), eps=1e-8)
    p, state = params(), None
    for k in range(3):
        p, state = spec.stateful_step(loss, p, state, k)
        reference.zero_grad()
        loss(leaves).backward()
        reference.step()
        for name in p:
            torch.testing.assert_close(p[name], leaves[name].detach())
    assert state[0] == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"first_order": False}, {"learn_lr": True}, {"names": ("b",)}, {"lr": (0.1, 0.05)}],
)
def test_adam_steps_are_first_order_on_every_parameter_with_one_step_size(kwargs):
    settings = {"lr": 0.1, "first_order": True, "optimizer": "adam", **kwargs}
    with pytest.raises(ValueError, match="Adam inner steps are first order"):
        InnerSpec(**settings)
