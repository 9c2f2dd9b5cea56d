"""MAML family (metarl.core.maml): meta-gradients against closed forms, finite differences, and
between the two task-batching modes."""

import pytest
import torch
from core_helpers import mse_loss
from torch import nn

from metarl.core import MAML
from metarl.core.params import named_params

MODES = ["loop", "vmap"]
F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def regression_tasks(tasks, n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tasks, n, d, generator=g, dtype=dtype)
    y = torch.randn(tasks, n, generator=g, dtype=dtype)
    return x, y


def mlp(dtype, seed=0, d_in=2):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    ).to(dtype)


def meta_grads(maml, support, query, mode):
    """``{name: d meta_loss / d name}`` for every parameter of the meta-learner."""
    maml.zero_grad(set_to_none=True)
    loss, _ = maml.meta_loss(support, query, mode=mode)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in maml.named_parameters()}
    maml.zero_grad(set_to_none=True)
    return grads


def meta_loss_value(maml, support, query, mode="loop"):
    with torch.no_grad():  # the inner loop uses torch.func.grad, which ignores outer no_grad
        return maml.meta_loss(support, query, mode=mode)[0].item()


# ---------------------------------------------------------------------------------------------
# 1 and 2. Closed-form meta-gradient of linear regression with squared loss
# ---------------------------------------------------------------------------------------------
# f(x) = w.x + b. With x~ = [x, 1] and theta = [w, b]:
#   L(theta)      = mean_j (x~_j . theta - y_j)^2
#   grad L(theta) = (2/n) X~^T (X~ theta - y)
#   H             = (2/n) X~^T X~                     (constant: the loss is quadratic)
# k inner steps:  phi_0 = theta,  phi_j = phi_{j-1} - alpha * grad L_s(phi_{j-1})
#   d phi_k / d theta = (I - alpha H_s)^k
# second order:   dL_q(phi_k)/dtheta = (I - alpha H_s)^k grad L_q(phi_k)
# first order:    dL_q(phi_k)/dtheta = grad L_q(phi_k)
# meta-loss = mean over tasks, so the meta-gradient is the mean of the per-task gradients.
ALPHA = 0.1
TASKS, N_SUPPORT, N_QUERY, DIM = 4, 5, 7, 3


def linear_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(DIM, 1).to(F64)
    support = regression_tasks(TASKS, N_SUPPORT, DIM, F64, seed + 1)
    query = regression_tasks(TASKS, N_QUERY, DIM, F64, seed + 2)
    return model, support, query


def augment(x):
    return torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype)], dim=-1)


def lin_grad(theta, x, y):
    xa = augment(x)
    return 2.0 / len(y) * xa.T @ (xa @ theta - y)


def lin_hessian(x):
    xa = augment(x)
    return 2.0 / len(x) * xa.T @ xa


def closed_form(model, support, query, steps, alpha):
    """Per task: (second-order meta-grad, first-order meta-grad, H_s, grad_q(phi_k))."""
    theta = torch.cat([model.weight.detach().flatten(), model.bias.detach()])
    eye = torch.eye(len(theta), dtype=F64)
    out = []
    for i in range(TASKS):
        xs, ys, xq, yq = support[0][i], support[1][i], query[0][i], query[1][i]
        phi = theta.clone()
        for _ in range(steps):
            phi = phi - alpha * lin_grad(phi, xs, ys)
        h_s = lin_hessian(xs)
        g_q = lin_grad(phi, xq, yq)
        jac = torch.linalg.matrix_power(eye - alpha * h_s, steps)
        out.append((jac @ g_q, g_q, h_s, g_q))
    return out


def flat_linear_grad(grads):
    return torch.cat([grads["model.weight"].flatten(), grads["model.bias"]])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_closed_form(mode, steps):
    # meta-grad = mean_i (I - alpha H_s,i)^k grad L_q,i(phi_k,i)
    model, support, query = linear_problem()
    maml = MAML(model, mse_loss(model), ALPHA, inner_steps=steps, task_batching=mode)
    got = flat_linear_grad(meta_grads(maml, support, query, mode=None))
    expected = torch.stack([so for so, *_ in closed_form(model, support, query, steps, ALPHA)])
    torch.testing.assert_close(got, expected.mean(0), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [1, 2])
def test_first_order_meta_gradient_is_query_gradient_at_phi(mode, steps):
    # first order: meta-grad = mean_i grad L_q,i(phi_k,i)  (no (I - alpha H) factor)
    model, support, query = linear_problem()
    maml = MAML(model, mse_loss(model), ALPHA, steps, first_order=True, task_batching=mode)
    got = flat_linear_grad(meta_grads(maml, support, query, mode=None))
    expected = torch.stack([fo for _, fo, *_ in closed_form(model, support, query, steps, ALPHA)])
    torch.testing.assert_close(got, expected.mean(0), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_second_minus_first_order_is_the_hessian_term(mode):
    # one step: SO - FO = mean_i [(I - alpha H_s) g_q - g_q] = -alpha * mean_i H_s,i g_q,i(phi_i)
    model, support, query = linear_problem(seed=3)
    so = MAML(model, mse_loss(model), ALPHA, 1, first_order=False)
    fo = MAML(model, mse_loss(model), ALPHA, 1, first_order=True)
    diff = flat_linear_grad(meta_grads(so, support, query, mode)) - flat_linear_grad(
        meta_grads(fo, support, query, mode)
    )
    terms = [-ALPHA * h @ g for *_, h, g in closed_form(model, support, query, 1, ALPHA)]
    expected = torch.stack(terms).mean(0)
    assert expected.abs().max() > 1e-3  # the term is not trivially zero
    torch.testing.assert_close(diff, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_meta_loss_value_and_metrics_are_task_means(mode):
    # meta_loss = mean_i L_q,i(phi_i); metrics = mean_i metric_i(phi_i)
    model, support, query = linear_problem()
    maml = MAML(model, mse_loss(model), ALPHA, inner_steps=1)
    loss, metrics = maml.meta_loss(support, query, mode=mode)
    theta = torch.cat([model.weight.detach().flatten(), model.bias.detach()])
    losses, maes = [], []
    for i in range(TASKS):
        phi = theta - ALPHA * lin_grad(theta, support[0][i], support[1][i])
        resid = augment(query[0][i]) @ phi - query[1][i]
        losses.append((resid**2).mean())
        maes.append(resid.abs().mean())
    torch.testing.assert_close(loss, torch.stack(losses).mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(metrics["mae"], torch.stack(maes).mean(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# 3. vmap vs loop on a small MLP with several inner steps; Meta-SGD; ANIL
# ---------------------------------------------------------------------------------------------
def sine_like(dtype, tasks=4, n_s=6, n_q=8, seed=10):
    support = regression_tasks(tasks, n_s, 2, dtype, seed)
    query = regression_tasks(tasks, n_q, 2, dtype, seed + 1)
    return support, query


TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), F64: dict(rtol=0, atol=1e-10)}


def assert_dicts_close(a, b, **tol):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], **tol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_equals_loop_mlp(dtype, first_order):
    # adapt_batch and d meta_loss / d theta agree between the two task-batching modes
    model = mlp(dtype)
    support, query = sine_like(dtype)
    maml = MAML(model, mse_loss(model), 0.05, inner_steps=3, first_order=first_order)
    adapted_loop = maml.adapt_batch(support, mode="loop")
    adapted_vmap = maml.adapt_batch(support, mode="vmap")
    assert adapted_loop["0.weight"].shape == (4, 16, 2)
    assert_dicts_close(adapted_loop, adapted_vmap, **TOL[dtype])
    assert_dicts_close(
        meta_grads(maml, support, query, "loop"),
        meta_grads(maml, support, query, "vmap"),
        **TOL[dtype],
    )


def test_adapt_batch_matches_hand_written_sgd():
    # phi_i = theta - a g(theta) - a g(phi_1) - ... (k steps), computed per task with autograd.grad
    model = mlp(F64)
    support, _ = sine_like(F64)
    loss_fn = mse_loss(model)
    maml = MAML(model, loss_fn, 0.05, inner_steps=3)
    adapted = maml.adapt_batch(support, mode="vmap")
    for i in range(4):
        phi = {k: v.detach().clone().requires_grad_() for k, v in named_params(model).items()}
        for _ in range(3):
            grads = torch.autograd.grad(
                loss_fn(phi, (support[0][i], support[1][i]))[0], list(phi.values())
            )
            phi = {
                k: (v - 0.05 * g).detach().requires_grad_() for (k, v), g in zip(phi.items(), grads)
            }
        for k in phi:
            torch.testing.assert_close(adapted[k][i], phi[k].detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_sgd_inner_lrs_get_matching_gradients(dtype, first_order):
    # Meta-SGD: phi = theta - lr (.) grad L_s; the per-parameter lr tensors are meta-parameters
    # (they get a gradient in first order too: d phi / d lr = -grad L_s)
    model = mlp(dtype)
    support, query = sine_like(dtype)
    maml = MAML(
        model, mse_loss(model), 0.05, inner_steps=2, learn_inner_lr=True, first_order=first_order
    )
    names = [n for n, _ in maml.named_parameters()]
    assert any(n.startswith("inner_lrs.") for n in names)
    g_loop = meta_grads(maml, support, query, "loop")
    g_vmap = meta_grads(maml, support, query, "vmap")
    assert_dicts_close(g_loop, g_vmap, **TOL[dtype])
    for n, g in g_loop.items():
        if n.startswith("inner_lrs."):
            assert g.abs().sum() > 0, f"{n} got no meta-gradient"


@pytest.mark.parametrize("mode", MODES)
def test_meta_sgd_inner_lr_gradient_matches_finite_difference(mode):
    # d meta_loss / d lr[k][idx] ~ (L(lr + h e) - L(lr - h e)) / 2h   (float64, central difference)
    model = mlp(F64)
    support, query = sine_like(F64)
    maml = MAML(model, mse_loss(model), 0.05, inner_steps=2, learn_inner_lr=True)
    with torch.no_grad():  # non-uniform step sizes so each entry matters on its own
        for p in maml.inner_lrs.values():
            p.uniform_(0.02, 0.08)
    grads = meta_grads(maml, support, query, mode)
    h = 1e-6
    for key, idx in [("2__weight", (3, 5)), ("0__bias", (7,)), ("4__weight", (0, 2))]:
        lr = maml.inner_lrs[key]
        with torch.no_grad():
            lr[idx] += h
            plus = meta_loss_value(maml, support, query, mode)
            lr[idx] -= 2 * h
            minus = meta_loss_value(maml, support, query, mode)
            lr[idx] += h
        fd = (plus - minus) / (2 * h)
        analytic = grads[f"inner_lrs.{key}"][idx].item()
        assert abs(fd) > 1e-6
        assert analytic == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_anil_adapts_only_the_head(mode):
    # ANIL with adapt_prefixes=["4."]: phi[body] = theta[body], phi[head] = theta[head] - a grad
    model = mlp(F64)
    support, _ = sine_like(F64)
    maml = MAML(model, mse_loss(model), 0.1, inner_steps=2, adapt_prefixes=["4."])
    assert maml.inner.names == ("4.weight", "4.bias")
    adapted = maml.adapt_batch(support, mode=mode)
    for name, theta in named_params(model).items():
        assert adapted[name].shape == (4, *theta.shape)
        for i in range(4):
            same = torch.equal(adapted[name][i], theta.detach())
            assert same == (not name.startswith("4.")), name


def test_anil_vmap_equals_loop():
    model = mlp(F64)
    support, query = sine_like(F64)
    maml = MAML(model, mse_loss(model), 0.1, inner_steps=2, adapt_prefixes=["4."])
    assert_dicts_close(
        maml.adapt_batch(support, mode="loop"), maml.adapt_batch(support, mode="vmap"), **TOL[F64]
    )
    assert_dicts_close(
        meta_grads(maml, support, query, "loop"),
        meta_grads(maml, support, query, "vmap"),
        **TOL[F64],
    )


@pytest.mark.parametrize("mode", MODES)
def test_anil_body_gets_second_order_gradient_through_head_adaptation(mode):
    # L(theta) = L_q(body, head - a grad_head L_s(body, head)); the body enters the head's
    # adapted value, so d/d body has a term that first order drops. Check SO against a finite
    # difference and that it differs from FO.
    model = mlp(F64)
    support, query = sine_like(F64)
    so = MAML(model, mse_loss(model), 0.1, inner_steps=2, adapt_prefixes=["4."])
    fo = MAML(model, mse_loss(model), 0.1, inner_steps=2, adapt_prefixes=["4."], first_order=True)
    g_so = meta_grads(so, support, query, mode)
    g_fo = meta_grads(fo, support, query, mode)
    body = "model.2.weight"
    assert (g_so[body] - g_fo[body]).abs().max() > 1e-6
    p = model.get_parameter("2.weight")
    h = 1e-6
    for idx in [(0, 0), (5, 11)]:
        with torch.no_grad():
            p[idx] += h
            plus = meta_loss_value(so, support, query, mode)
            p[idx] -= 2 * h
            minus = meta_loss_value(so, support, query, mode)
            p[idx] += h
        fd = (plus - minus) / (2 * h)
        assert g_so[body][idx].item() == pytest.approx(fd, rel=1e-6, abs=1e-9)


class CompositeNorm(nn.Module):
    """Batch normalisation over dim 0 from composite ops: mean and
    E[x^2] - E[x]^2, then one affine. Native batch-norm gives wrong second-order gradients
    under vmap; this form must match the loop exactly."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        mean = x.mean(0)
        var = (x * x).mean(0) - mean * mean
        return (x - mean) * torch.rsqrt(var + 1e-5) * self.weight + self.bias


def test_vmap_equals_loop_second_order_with_normalisation():
    # a model that normalises over the batch: vmap == loop in float64, second order
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 16), CompositeNorm(16), nn.ReLU(), nn.Linear(16, 1)).to(F64)
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    support, query = sine_like(F64)
    maml = MAML(model, mse_loss(model), 0.1, inner_steps=2)
    assert_dicts_close(
        meta_grads(maml, support, query, "loop"),
        meta_grads(maml, support, query, "vmap"),
        **TOL[F64],
    )


def test_zero_inner_steps_is_plain_query_loss():
    # inner_steps = 0: meta_loss = mean_i L_q,i(theta)
    model = mlp(F64)
    support, query = sine_like(F64)
    loss_fn = mse_loss(model)
    maml = MAML(model, loss_fn, 0.1, inner_steps=0)
    expected = torch.stack(
        [loss_fn(named_params(model), (query[0][i], query[1][i]))[0] for i in range(4)]
    ).mean()
    for mode in MODES:
        torch.testing.assert_close(maml.meta_loss(support, query, mode=mode)[0], expected)


# ---------------------------------------------------------------------------------------------
# 7. argument checks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_maml_rejects_non_positive_inner_lr(lr):
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="inner_lr"):
        MAML(model, mse_loss(model), lr)


def test_maml_rejects_negative_inner_steps_and_empty_prefix_filter():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="inner_steps"):
        MAML(model, mse_loss(model), 0.1, inner_steps=-1)
    with pytest.raises(ValueError, match="selects none"):
        MAML(model, mse_loss(model), 0.1, adapt_prefixes=["head."])
