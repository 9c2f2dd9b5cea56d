"""Helpers shared by the tests of ``metarl.core``."""

import torch


def mse_loss(model):
    """Task loss ``(params, (x, y)) -> (mean squared error, metrics)`` for a regression model."""

    def loss_fn(params, data):
        x, y = data
        pred = torch.func.functional_call(model, params, (x,)).squeeze(-1)
        loss = ((pred - y) ** 2).mean()
        return loss, {"mae": (pred - y).abs().mean()}

    return loss_fn
