import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metarl.core import MAML, Reptile, named_params
from metarl.fewshot.episodes import EpisodeSampler
from metarl.fewshot.image_set import LabelledImages
from metarl.fewshot.losses import classification_loss
from metarl.fewshot.models import MLP, BatchStatNorm, Conv4, GroupStatNorm, embedding
from metarl.fewshot.protonets import ProtoNet, protonet_loss


def test_conv4_shapes_and_names() -> None:
    omniglot = Conv4(1, 5)
    assert omniglot.feature_dim == 256
    assert omniglot(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    mini = Conv4(3, 5, filters=32, pooling="max", image_size=84)
    assert mini.feature_dim == 800
    names = list(named_params(omniglot))
    assert [n for n in names if n.startswith("head.")] == ["head.weight", "head.bias"]
    assert not any("running" in n for n, _ in omniglot.named_buffers())
    assert MLP(1, [40, 40], 1)(torch.zeros(4, 1)).shape == (4, 1)
    with pytest.raises(ValueError, match="normalization must be one of"):
        Conv4(1, 5, normalization="layer")
    with pytest.raises(ValueError, match="too small"):
        Conv4(1, 5, pooling="max", image_size=8)


def test_norms_match_the_native_ops() -> None:
    x = torch.randn(6, 8, 5, 5, dtype=torch.float64)
    bn = BatchStatNorm(8).double()
    torch.testing.assert_close(bn(x), F.batch_norm(x, None, None, training=True, eps=bn.eps))
    gn = GroupStatNorm(4, 8).double()
    torch.testing.assert_close(gn(x), F.group_norm(x, 4, eps=gn.eps))


def test_norms_stay_exact_in_float32_when_the_mean_dwarfs_the_spread() -> None:
    """E[x^2] - E[x]^2 cancels catastrophically here (mean 1e3, s.d. 0.1: the one-pass
    variance is rounding noise, often negative); the two-pass form matches the native ops."""
    g = torch.Generator().manual_seed(0)
    x = 1e3 + 0.1 * torch.randn(6, 8, 5, 5, generator=g)
    bn, gn = BatchStatNorm(8), GroupStatNorm(4, 8)
    for ours, native in (
        (bn(x), F.batch_norm(x, None, None, training=True, eps=bn.eps)),
        (gn(x), F.group_norm(x, 4, eps=gn.eps)),
    ):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, native, atol=2e-2, rtol=0)


@pytest.mark.parametrize("normalization", ["batch", "group"])
def test_second_order_meta_gradient_vmap_equals_loop(normalization: str) -> None:
    """Native batch norm under vmap gives wrong second-order gradients; ours must not."""
    torch.manual_seed(0)
    model = Conv4(1, 3, filters=4, normalization=normalization, image_size=8, num_groups=2)
    model = model.double()
    support = (torch.randn(3, 6, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (3, 6)))
    query = (torch.randn(3, 9, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (3, 9)))
    grads = {}
    for mode in ("vmap", "loop"):
        maml = MAML(model, classification_loss(model), 0.4, inner_steps=2, task_batching=mode)
        loss, metrics = maml.meta_loss(support, query)
        grads[mode] = torch.autograd.grad(loss, list(maml.params().values()))
        assert 0.0 <= float(metrics["accuracy"]) <= 1.0
    for a, b in zip(grads["vmap"], grads["loop"]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_anil_and_reptile_run_on_sampled_batches() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8)
    data = LabelledImages.from_arrays(images, np.repeat(np.arange(8), 5))
    batch = EpisodeSampler(data, 3, 1, 2, rotations=True).sample_tasks(4, rng)
    model = Conv4(1, 3, filters=8, image_size=12)
    anil = MAML(model, classification_loss(model), 0.4, adapt_prefixes=["head."])
    assert anil.inner.names == ("head.weight", "head.bias")
    # ANIL's inner step moves the head only, by -0.4 x the support cross-entropy's gradient
    adapted = anil.adapt_batch(batch.support, mode="loop")
    theta = named_params(model)
    for i in range(4):
        x, y = batch.support[0][i], batch.support[1][i]
        head = {k: v.detach().clone().requires_grad_() for k, v in theta.items() if "head" in k}
        rest = {k: v.detach() for k, v in theta.items() if "head" not in k}
        logits = torch.func.functional_call(model, {**rest, **head}, (x,))
        grads = torch.autograd.grad(F.cross_entropy(logits, y), list(head.values()))
        for (name, value), g in zip(head.items(), grads):
            torch.testing.assert_close(adapted[name][i], value - 0.4 * g)
        for name, value in rest.items():
            torch.testing.assert_close(adapted[name][i], value)
    # the meta-gradient still reaches the body (through the adapted head's input features)
    loss, _ = anil.meta_loss(batch.support, batch.query)
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if not n.startswith("head.")]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    reptile = Reptile(model, classification_loss(model), 0.1, inner_steps=2)
    before = model.head.weight.detach().clone()
    reptile.meta_step(batch.support, eps=0.5)
    assert not torch.equal(before, model.head.weight)


def test_protonet_loss_by_hand() -> None:
    identity = lambda params, x: x.flatten(1)  # noqa: E731
    support = (torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]]), torch.tensor([0, 0, 1]))
    query = (torch.tensor([[1.0, 0.0], [9.0, 9.0]]), torch.tensor([0, 1]))
    loss, metrics = protonet_loss(identity, {}, support, query, num_ways=2)
    # prototypes (1, 0) and (10, 10); distances q0: 0 and 181; q1: 145 and 2
    expected = F.cross_entropy(-torch.tensor([[0.0, 181.0], [145.0, 2.0]]), query[1])
    torch.testing.assert_close(loss, expected)
    assert float(metrics["accuracy"]) == 1.0


def test_protonet_vmap_equals_loop_and_trains() -> None:
    torch.manual_seed(0)
    model = Conv4(1, 5, filters=4, image_size=8).double()
    support = (torch.randn(2, 6, 1, 8, 8, dtype=torch.float64), torch.tensor([[0, 1, 2] * 2] * 2))
    query = (torch.randn(2, 3, 1, 8, 8, dtype=torch.float64), torch.tensor([[2, 0, 1]] * 2))
    net = ProtoNet(model, num_ways=3)
    losses = {m: net.meta_loss(support, query, mode=m)[0] for m in ("vmap", "loop")}
    torch.testing.assert_close(losses["vmap"], losses["loop"])
    losses["vmap"].backward()
    assert model.features[0][0].weight.grad is not None and model.head.weight.grad is None
    z = embedding(model)(named_params(model), support[0][0])
    assert z.shape == (6, model.feature_dim)
