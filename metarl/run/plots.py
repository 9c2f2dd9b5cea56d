"""The plot every run gets: its adaptation curve (metric vs inner steps, 95% CI band)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metarl.core import AdaptationCurve  # noqa: E402


def plot_adaptation_curve(curve: AdaptationCurve, path: Path, title: str) -> Path:
    lo = [m - c for m, c in zip(curve.mean, curve.ci95)]
    hi = [m + c for m, c in zip(curve.mean, curve.ci95)]
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    ax.plot(curve.steps, curve.mean, marker="o", label="meta-learned init")
    ax.fill_between(curve.steps, lo, hi, alpha=0.25, label="95% CI")
    ax.set_xlabel("inner gradient steps at test time")
    ax.set_ylabel(curve.metric)
    ax.set_title(f"{title}\n({curve.num_tasks} held-out tasks)", fontsize=9)
    ax.set_xticks(curve.steps)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
