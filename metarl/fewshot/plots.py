"""Few-shot plots: one sinusoid task's fit before and after adaptation, against the truth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from metarl.core import functional  # noqa: E402

from .sinusoid import X_RANGE, SinusoidBatch, sinusoid  # noqa: E402


def plot_sinusoid_fit(learner, model, batch: SinusoidBatch, steps: int, path: Path) -> Path:
    """Prediction of the meta-learned init and after 1 and ``steps`` inner steps on one task
    (computed on the model's device, drawn from the CPU)."""
    f = functional(model)
    device = next(model.parameters()).device
    xs = torch.linspace(*X_RANGE, 200).unsqueeze(-1)
    (sx, sy), amp, phase = batch.support, batch.amplitude[0], batch.phase[0]
    support = (sx[0].to(device), sy[0].to(device))
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    ax.plot(xs, sinusoid(xs, amp, phase), "k-", lw=2, label="true function")
    theta = {k: v.detach() for k, v in learner.params().items()}
    for s in sorted({0, 1, steps}):
        params = learner.adapt(theta, support, steps=s)
        with torch.no_grad():
            pred = f({k: v.detach() for k, v in params.items()}, xs.to(device)).cpu()
        ax.plot(xs, pred, "--", label=f"after {s} step{'s' if s != 1 else ''}")
    ax.plot(sx[0], sy[0], "^", color="C3", label=f"{sx.shape[1]} support points")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("sinusoid: one held-out task, before and after adaptation", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
