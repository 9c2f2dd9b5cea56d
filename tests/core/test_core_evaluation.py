"""Adaptation curves (MAML.adaptation_curve) and their summary statistics (summarize)."""

import math

import pytest
import torch
from core_helpers import mse_loss
from torch import nn

from metarl.core import MAML, summarize
from metarl.core.params import named_params

F64 = torch.float64
TASKS, STEPS = 3, 3


def problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).to(F64)
    g = torch.Generator().manual_seed(seed + 1)

    def data(n):
        return (
            torch.randn(TASKS, n, 2, generator=g, dtype=F64),
            torch.randn(TASKS, n, generator=g, dtype=F64),
        )

    return model, data(5), data(7)


def hand_curve(loss_fn, theta, support, query, i, steps, lr):
    """Rows k = 0..steps of (query loss, query mae) after k first-order SGD steps on task i.

    phi_0 = theta; phi_k = phi_{k-1} - lr (.) grad L_s(phi_{k-1}); lr a float or per-name dict.
    """
    phi = {k: v.detach().clone() for k, v in theta.items()}
    rows = []
    for step in range(steps + 1):
        loss, metrics = loss_fn(phi, (query[0][i], query[1][i]))
        rows.append((loss.item(), metrics["mae"].item()))
        if step < steps:
            p = {k: v.clone().requires_grad_() for k, v in phi.items()}
            grads = torch.autograd.grad(
                loss_fn(p, (support[0][i], support[1][i]))[0], list(p.values())
            )
            step_of = (lambda k: lr[k]) if isinstance(lr, dict) else (lambda k: lr)
            phi = {k: (phi[k] - step_of(k) * g).detach() for k, g in zip(phi, grads)}
    return rows


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_adaptation_curve_rows_match_hand_computed_steps(meta_sgd):
    # curve[name][k, i] = metric of task i after k first-order inner steps; row 0 = unadapted
    model, support, query = problem()
    loss_fn = mse_loss(model)
    maml = MAML(model, loss_fn, 0.1, inner_steps=1, learn_inner_lr=meta_sgd)
    lr = 0.1
    if meta_sgd:  # non-uniform per-parameter step sizes
        with torch.no_grad():
            for p in maml.inner_lrs.values():
                p.uniform_(0.05, 0.15)
        lr = {k: v.detach() for k, v in maml.learned_lrs().items()}
    theta = named_params(model)
    curves = {
        mode: maml.adaptation_curve(support, query, STEPS, mode=mode) for mode in ("loop", "vmap")
    }
    for curve in curves.values():
        assert set(curve) == {"loss", "mae"}
        assert curve["loss"].shape == (STEPS + 1, TASKS)
        for i in range(TASKS):
            rows = hand_curve(loss_fn, theta, support, query, i, STEPS, lr)
            for k, (loss, mae) in enumerate(rows):
                assert curve["loss"][k, i].item() == pytest.approx(loss, rel=1e-12, abs=1e-12)
                assert curve["mae"][k, i].item() == pytest.approx(mae, rel=1e-12, abs=1e-12)
        # row 0: the unadapted query loss
        for i in range(TASKS):
            unadapted = loss_fn(theta, (query[0][i], query[1][i]))[0]
            assert curve["loss"][0, i].item() == pytest.approx(unadapted.item(), rel=1e-14)
    for name in curves["loop"]:
        torch.testing.assert_close(curves["loop"][name], curves["vmap"][name], rtol=0, atol=1e-12)
    # the steps really move the parameters: every task's query loss changes at every step
    assert (curves["loop"]["loss"].diff(dim=0).abs() > 1e-8).all()


def test_adaptation_curve_leaves_model_untouched():
    # no .grad on any parameter (model or inner lrs), parameters unchanged, output keeps no graph
    model, support, query = problem(seed=2)
    maml = MAML(model, mse_loss(model), 0.1, inner_steps=1, learn_inner_lr=True)
    before = {n: p.detach().clone() for n, p in maml.named_parameters()}
    for mode in ("loop", "vmap"):
        curve = maml.adaptation_curve(support, query, STEPS, mode=mode)
        assert not curve["loss"].requires_grad
    for n, p in maml.named_parameters():
        assert p.grad is None, n
        assert torch.equal(p.detach(), before[n]), n


def test_adaptation_curve_zero_steps():
    model, support, query = problem(seed=3)
    maml = MAML(model, mse_loss(model), 0.1)
    curve = maml.adaptation_curve(support, query, 0, mode="loop")
    assert curve["loss"].shape == (1, TASKS)
    # the single row is the unadapted model's query loss, task by task
    loss_fn, theta = mse_loss(model), named_params(model)
    for i in range(TASKS):
        with torch.no_grad():
            expected, _ = loss_fn(theta, (query[0][i], query[1][i]))
        assert float(curve["loss"][0, i]) == pytest.approx(expected.item(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# summarize: mean, stderr = std(ddof=1) / sqrt(n), ci95 = 1.96 * stderr
# ---------------------------------------------------------------------------------------------
def test_summarize_known_numbers():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], [0.0, 10.0, 0.0, 10.0]])
    s = summarize("accuracy", values)
    assert s.metric == "accuracy"
    assert s.steps == [0, 1, 2]
    assert s.num_tasks == 4
    assert s.mean == pytest.approx([2.5, 2.0, 5.0])
    # row 0: deviations -1.5, -0.5, 0.5, 1.5 -> var = 5 / 3; row 2: var = 4 * 25 / 3
    std = [math.sqrt(5 / 3), 0.0, math.sqrt(100 / 3)]
    stderr = [x / 2 for x in std]
    assert s.stderr == pytest.approx(stderr, rel=1e-12)
    assert s.ci95 == pytest.approx([1.96 * x for x in stderr], rel=1e-12)
    d = s.as_dict()
    assert d["num_tasks"] == 4 and d["mean"] == s.mean
    # paired gains against step 0: row 1 - row 0 = 1, 0, -1, -2 (mean -0.5, var 5 / 3);
    # row 2 - row 0 = -1, 8, -3, 6 (mean 2.5, var ((-3.5)^2 + 5.5^2 + (-5.5)^2 + 3.5^2) / 3)
    assert s.gain_stderr == pytest.approx(
        [0.0, math.sqrt(5 / 3) / 2, math.sqrt((2 * 3.5**2 + 2 * 5.5**2) / 3) / 2], rel=1e-12
    )


def test_a_shared_task_offset_cancels_in_the_gain_stderr():
    # tasks differ a lot, every task gains exactly 1: the gain is certain, the means are not
    base = torch.tensor([0.0, 100.0, -50.0, 30.0], dtype=F64)
    s = summarize("return", torch.stack([base, base + 1.0]))
    assert s.mean[1] - s.mean[0] == pytest.approx(1.0)
    assert s.stderr[1] > 10 and s.gain_stderr == [0.0, 0.0]


def test_summarize_custom_steps_single_task_and_shape_check():
    s = summarize("loss", [[3.0], [1.0]], steps=[0, 10])
    assert s.steps == [0, 10]
    assert s.mean == [3.0, 1.0]
    assert s.stderr == [0.0, 0.0] and s.ci95 == [0.0, 0.0]
    assert s.num_tasks == 1
    with pytest.raises(ValueError, match="steps, tasks"):
        summarize("loss", torch.ones(5))


def test_summary_keeps_each_tasks_value_beside_its_description():
    values = torch.tensor([[1.0, -7.0, 3.0], [2.0, 5.0, float("nan")]], dtype=F64)
    tasks = [{"goal": [0.1, 0.2]}, {"goal": [0.3, 0.4]}, {"goal": [0.5, 0.6]}]
    s = summarize("return", values, tasks=tasks)
    assert s.values[0] == [1.0, -7.0, 3.0]
    assert s.values[1][:2] == [2.0, 5.0] and math.isnan(s.values[1][2])
    assert s.tasks == tasks and s.as_dict()["tasks"] == tasks
    assert summarize("loss", values[:, :2]).tasks == []  # a domain without descriptions
    with pytest.raises(ValueError, match="2 task descriptions for 3 tasks"):
        summarize("return", values, tasks=tasks[:2])


def test_standalone_adaptation_curve_with_stateful_step():
    # curve.adaptation_curve threads step_fn's state: a step that moves every parameter by
    # -(state + 1) * 0.01 (state = number of previous steps) gives phi_k = theta - 0.01 k(k+1)/2
    from metarl.core import adaptation_curve

    model, support, query = problem(seed=4)
    loss_fn = mse_loss(model)
    theta = named_params(model)

    def step_fn(params, state, s):
        n = 0 if state is None else state
        return {k: v - 0.01 * (n + 1) for k, v in params.items()}, n + 1

    for mode in ("loop", "vmap"):
        curve = adaptation_curve(loss_fn, theta, support, query, 3, step_fn, mode=mode)
        for k in range(4):
            phi = {n: v.detach() - 0.01 * k * (k + 1) / 2 for n, v in theta.items()}
            for i in range(TASKS):
                expected = loss_fn(phi, (query[0][i], query[1][i]))[0].item()
                assert curve["loss"][k, i].item() == pytest.approx(expected, rel=1e-12)
    assert all(p.grad is None for p in model.parameters())
