"""Reptile (metarl.core.reptile): the meta-step against its formula with hand-computed inner loops."""

import pytest
import torch
from torch import nn

from metarl.core import Reptile, reptile_update
from metarl.core.params import named_params, stack_params

MODES = ["loop", "vmap"]
F64 = torch.float64
TASKS, STEPS, LR = 3, 4, 0.05


def mse_loss(model):
    def loss_fn(params, data):
        x, y = data
        pred = torch.func.functional_call(model, params, (x,)).squeeze(-1)
        loss = ((pred - y) ** 2).mean()
        return loss, {}

    return loss_fn


def problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).to(F64)
    g = torch.Generator().manual_seed(seed + 1)
    support = (
        torch.randn(TASKS, 6, 2, generator=g, dtype=F64),
        torch.randn(TASKS, 6, generator=g, dtype=F64),
    )
    return model, support


def task_grad(loss_fn, params, x, y):
    p = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    grads = torch.autograd.grad(loss_fn(p, (x, y))[0], list(p.values()))
    return dict(zip(p, grads))


def hand_sgd(loss_fn, theta, x, y, steps, lr):
    # phi_0 = theta, phi_j = phi_{j-1} - lr * grad L(phi_{j-1})
    phi = {k: v.detach().clone() for k, v in theta.items()}
    for _ in range(steps):
        g = task_grad(loss_fn, phi, x, y)
        phi = {k: phi[k] - lr * g[k] for k in phi}
    return phi


def hand_adam_beta1_zero(loss_fn, theta, x, y, steps, lr, beta2=0.999, eps=1e-8):
    # beta1 = 0: m_t = g_t; v_t = b2 v_{t-1} + (1 - b2) g_t^2; v_hat = v_t / (1 - b2^t)
    # phi_t = phi_{t-1} - lr * g_t / (sqrt(v_hat) + eps)
    phi = {k: v.detach().clone() for k, v in theta.items()}
    v = {k: torch.zeros_like(t) for k, t in phi.items()}
    for t in range(1, steps + 1):
        g = task_grad(loss_fn, phi, x, y)
        for k in phi:
            v[k] = beta2 * v[k] + (1 - beta2) * g[k] ** 2
            v_hat = v[k] / (1 - beta2**t)
            phi[k] = phi[k] - lr * g[k] / (v_hat.sqrt() + eps)
    return phi


def test_reptile_update_formula():
    # theta <- theta + eps * (mean_i phi_i - theta), in place on the live parameters
    model, support = problem()
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    phis = [
        hand_sgd(loss_fn, theta0, support[0][i], support[1][i], STEPS, LR) for i in range(TASKS)
    ]
    eps = 0.3
    reptile_update(named_params(model), stack_params(phis), eps)
    for k, p in named_params(model).items():
        expected = theta0[k] + eps * torch.stack([phi[k] - theta0[k] for phi in phis]).mean(0)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_meta_step_equals_formula_with_hand_sgd(mode):
    # phi_i = k SGD steps on task i; theta' = theta + eps * mean_i(phi_i - theta)
    model, support = problem()
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    phis = [
        hand_sgd(loss_fn, theta0, support[0][i], support[1][i], STEPS, LR) for i in range(TASKS)
    ]
    reptile = Reptile(model, loss_fn, LR, STEPS, task_batching=mode)
    eps = 0.5
    adapted = reptile.meta_step(support, eps)
    for k, p in named_params(model).items():
        for i in range(TASKS):
            torch.testing.assert_close(adapted[k][i], phis[i][k], rtol=0, atol=1e-12)
        expected = theta0[k] + eps * torch.stack([phi[k] - theta0[k] for phi in phis]).mean(0)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-12)
        assert p.grad is None


@pytest.mark.parametrize("mode", MODES)
def test_adam_inner_loop_matches_hand_written_adam(mode):
    # Reptile's Adam variant (beta1 = 0, fresh state per task) against the formula above
    model, support = problem(seed=4)
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    reptile = Reptile(model, loss_fn, 0.01, 3, inner_optimizer="adam", task_batching=mode)
    adapted = reptile.adapt_batch(support)
    for i in range(TASKS):
        phi = hand_adam_beta1_zero(loss_fn, theta0, support[0][i], support[1][i], 3, 0.01)
        for k in phi:
            torch.testing.assert_close(adapted[k][i], phi[k], rtol=0, atol=1e-12)
    # and the meta-step built on it
    eps = 0.25
    reptile.meta_step(support, eps)
    for k, p in named_params(model).items():
        torch.testing.assert_close(
            p.detach(), theta0[k] + eps * (adapted[k].mean(0) - theta0[k]), rtol=0, atol=1e-12
        )


def test_adam_first_step_is_sign_step():
    # t = 1, beta1 = 0: v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g)
    model, support = problem(seed=5)
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    reptile = Reptile(model, loss_fn, 0.01, 1, inner_optimizer="adam", task_batching="loop")
    adapted = reptile.adapt_batch(support)
    g = task_grad(loss_fn, theta0, support[0][0], support[1][0])
    for k in theta0:
        torch.testing.assert_close(
            adapted[k][0], theta0[k] - 0.01 * g[k] / (g[k].abs() + 1e-8), rtol=0, atol=1e-12
        )


def test_vmap_equals_loop_and_arguments_checked():
    model, support = problem(seed=6)
    reptile = Reptile(model, mse_loss(model), LR, STEPS)
    a = reptile.adapt_batch(support, mode="loop")
    b = reptile.adapt_batch(support, mode="vmap")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="inner_lr"):
        Reptile(model, mse_loss(model), 0.0, 1)
    with pytest.raises(ValueError, match="inner_optimizer"):
        Reptile(model, mse_loss(model), 0.1, 1, inner_optimizer="rmsprop")


@pytest.mark.parametrize("betas", [(0.0, 0.999), (0.9, 0.99)])
def test_adam_steps_match_torch_optim_adam(betas):
    # adam_steps from a fresh state == torch.optim.Adam(lr, betas, eps) run for the same steps
    from metarl.core import adam_steps

    model, support = problem(seed=7)
    loss_fn = mse_loss(model)
    x, y = support[0][0], support[1][0]
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    got = adam_steps(lambda p: loss_fn(p, (x, y))[0], theta0, 5, 0.01, betas, 1e-8)
    ref = {k: v.clone().requires_grad_() for k, v in theta0.items()}
    opt = torch.optim.Adam(list(ref.values()), lr=0.01, betas=betas, eps=1e-8)
    for _ in range(5):
        opt.zero_grad()
        loss_fn(ref, (x, y))[0].backward()
        opt.step()
    for k in got:
        torch.testing.assert_close(got[k], ref[k].detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_reptile_adaptation_curve_matches_hand_steps(optimizer):
    # row k = query loss after k inner-optimizer steps; Adam keeps its state across the rows,
    # so row k equals the query loss of k hand-written Adam steps from a fresh state
    model, support = problem(seed=8)
    g = torch.Generator().manual_seed(9)
    query = (
        torch.randn(TASKS, 5, 2, generator=g, dtype=F64),
        torch.randn(TASKS, 5, generator=g, dtype=F64),
    )
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    lr, steps = 0.02, 3
    reptile = Reptile(model, loss_fn, lr, steps, inner_optimizer=optimizer)
    curves = {m: reptile.adaptation_curve(support, query, steps, mode=m) for m in ("loop", "vmap")}
    hand = hand_adam_beta1_zero if optimizer == "adam" else hand_sgd
    for curve in curves.values():
        assert curve["loss"].shape == (steps + 1, TASKS)
        for i in range(TASKS):
            for k in range(steps + 1):
                phi = hand(loss_fn, theta0, support[0][i], support[1][i], k, lr)
                expected = loss_fn(phi, (query[0][i], query[1][i]))[0]
                assert curve["loss"][k, i].item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(curves["loop"]["loss"], curves["vmap"]["loss"], rtol=0, atol=1e-12)
    for k, p in named_params(model).items():
        assert p.grad is None and torch.equal(p.detach(), theta0[k])


def hand_adam_carried(loss_fn, theta, batches, lr, t, v, beta2=0.999, eps=1e-8):
    # beta1 = 0 Adam continuing from step count t and second moments v; batches: [(x, y), ...]
    phi = {k: w.detach().clone() for k, w in theta.items()}
    v = {k: w.clone() for k, w in v.items()}
    for x, y in batches:
        t += 1
        g = task_grad(loss_fn, phi, x, y)
        for k in phi:
            v[k] = beta2 * v[k] + (1 - beta2) * g[k] ** 2
            phi[k] = phi[k] - lr * g[k] / ((v[k] / (1 - beta2**t)).sqrt() + eps)
    return phi, t, v


def test_carried_adam_state_runs_tasks_in_sequence():
    # the authors' code: one Adam whose moments pass from task to task and across meta-steps;
    # every task starts from theta, and inner step k of task i uses the examples rows[i, k]
    model, support = problem(seed=10)
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    lr, steps, eps = 0.01, 3, 0.5
    rows = torch.randint(0, 6, (2, TASKS, steps, 4), generator=torch.Generator().manual_seed(3))
    reptile = Reptile(model, loss_fn, lr, steps, inner_optimizer="adam", carry_optimizer_state=True)
    t, v = 0, {k: torch.zeros_like(w) for k, w in theta0.items()}
    theta = theta0
    for meta in range(2):
        adapted = reptile.meta_step(support, eps, rows=rows[meta])
        phis = []
        for i in range(TASKS):
            x, y = support[0][i], support[1][i]
            batches = [(x[rows[meta, i, k]], y[rows[meta, i, k]]) for k in range(steps)]
            phi, t, v = hand_adam_carried(loss_fn, theta, batches, lr, t, v)
            phis.append(phi)
            for k in phi:
                torch.testing.assert_close(adapted[k][i], phi[k], rtol=0, atol=1e-12)
        theta = {
            k: theta[k] + eps * (torch.stack([p[k] for p in phis]).mean(0) - theta[k])
            for k in theta
        }
        for k, p in named_params(model).items():
            torch.testing.assert_close(p.detach(), theta[k], rtol=0, atol=1e-12)
    state_t, _, state_v = reptile.optimizer_state
    assert state_t == t == 2 * TASKS * steps
    for k in v:
        torch.testing.assert_close(state_v[k], v[k], rtol=0, atol=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_evaluation_starts_from_the_carried_state_and_keeps_it(mode):
    model, support = problem(seed=11)
    loss_fn = mse_loss(model)
    reptile = Reptile(
        model,
        loss_fn,
        0.01,
        2,
        inner_optimizer="adam",
        carry_optimizer_state=True,
        task_batching=mode,
    )
    reptile.meta_step(support, 0.5)
    t0, _, v0 = reptile.optimizer_state
    v0 = {k: w.clone() for k, w in v0.items()}
    theta = {k: w.detach().clone() for k, w in named_params(model).items()}
    rows = torch.randint(0, 6, (TASKS, 4, 3), generator=torch.Generator().manual_seed(5))
    curve = reptile.adaptation_curve(support, support, 4, rows=rows)
    for i in range(TASKS):
        x, y = support[0][i], support[1][i]
        batches = [(x[rows[i, k]], y[rows[i, k]]) for k in range(4)]
        phi, *_ = hand_adam_carried(loss_fn, theta, batches, 0.01, t0, v0)
        assert curve["loss"][4, i].item() == pytest.approx(
            loss_fn(phi, (x, y))[0].item(), rel=1e-10
        )
    t1, _, v1 = reptile.optimizer_state
    assert t1 == t0 and all(torch.equal(v1[k], v0[k]) for k in v0)
    # a fresh Adam (no carried state) gives a different curve
    fresh = Reptile(model, loss_fn, 0.01, 2, inner_optimizer="adam", task_batching=mode)
    assert not torch.allclose(
        fresh.adaptation_curve(support, support, 4, rows=rows)["loss"], curve["loss"]
    )


def test_carried_state_is_checkpointed():
    model, support = problem(seed=12)
    reptile = Reptile(
        model, mse_loss(model), 0.01, 2, inner_optimizer="adam", carry_optimizer_state=True
    )
    reptile.meta_step(support, 0.5)
    state = reptile.state_dict()
    model2, _ = problem(seed=13)
    other = Reptile(
        model2, mse_loss(model2), 0.01, 2, inner_optimizer="adam", carry_optimizer_state=True
    )
    other.load_state_dict(state)
    assert other.optimizer_state[0] == reptile.optimizer_state[0]
    for k, w in reptile.optimizer_state[2].items():
        assert torch.equal(other.optimizer_state[2][k], w)
    with pytest.raises(ValueError, match="carry_optimizer_state needs inner_optimizer='adam'"):
        Reptile(model, mse_loss(model), 0.01, 2, inner_optimizer="sgd", carry_optimizer_state=True)


@pytest.mark.parametrize("mode", MODES)
def test_rows_select_the_inner_batches(mode):
    model, support = problem(seed=14)
    loss_fn = mse_loss(model)
    theta0 = {k: v.detach().clone() for k, v in named_params(model).items()}
    rows = torch.randint(0, 6, (TASKS, STEPS, 2), generator=torch.Generator().manual_seed(7))
    reptile = Reptile(model, loss_fn, LR, STEPS, task_batching=mode)
    adapted = reptile.adapt_batch(support, rows=rows)
    for i in range(TASKS):
        phi = {k: w.clone() for k, w in theta0.items()}
        for k in range(STEPS):
            x, y = support[0][i][rows[i, k]], support[1][i][rows[i, k]]
            phi = hand_sgd(loss_fn, phi, x, y, 1, LR)
        for name in phi:
            torch.testing.assert_close(adapted[name][i], phi[name], rtol=0, atol=1e-12)
