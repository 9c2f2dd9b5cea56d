"""The plot every run gets: its adaptation curve (metric vs inner steps, 95% CI band, median)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metarl.core import AdaptationCurve  # noqa: E402


def _axis_limits(curve: AdaptationCurve) -> tuple[float, float]:
    """Limits that keep the bulk of tasks readable when a few diverge (mean -> 1e10 or NaN)."""
    typical = [v for v in (*curve.median, curve.mean[0]) if math.isfinite(v)]
    if not typical:
        return -1.0, 1.0
    lo, hi = min(typical), max(typical)
    span = max(hi - lo, 1e-9)
    means = [m for m in curve.mean if math.isfinite(m) and abs(m - lo) <= 3 * span]
    lo, hi = min([lo, *means]), max([hi, *means])
    pad = 0.15 * max(hi - lo, 1e-9)
    return lo - pad, hi + pad


def _save(fig: plt.Figure, ax: plt.Axes, path: Path) -> Path:
    """Grid, legend, tight layout; write ``path`` and free the figure."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_adaptation_curve(
    curve: AdaptationCurve,
    path: Path,
    title: str,
    reference: dict[str, list[float]] | None = None,
    episodes: bool = False,
) -> Path:
    """Mean with its 95% CI and the median against inner steps (or, ``episodes``, an RL²
    trial's episodes); ``reference`` adds dashed published curves (``{"MAML paper": [...]}``)."""
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    y0, y1 = _axis_limits(curve)
    ref_values = [v for values in (reference or {}).values() for v in values if math.isfinite(v)]
    if ref_values:
        pad = 0.05 * (y1 - y0)
        y0, y1 = min(y0, min(ref_values) - pad), max(y1, max(ref_values) + pad)
    shown = [(s, m, c) for s, m, c in zip(curve.steps, curve.mean, curve.ci95) if y0 <= m <= y1]
    if shown:
        s, m, c = zip(*shown)
        ax.plot(s, m, marker="o", label="mean")
        ax.fill_between(
            s,
            [a - b for a, b in zip(m, c)],
            [a + b for a, b in zip(m, c)],
            alpha=0.25,
            label="95% CI of the mean",
        )
    ax.plot(curve.steps, curve.median, marker="s", ls="--", ms=4, label="median")
    for label, values in (reference or {}).items():
        n = min(len(values), len(curve.steps))
        ax.plot(curve.steps[:n], values[:n], ls=":", marker="x", color="k", label=label)
    off = [s for s, m in zip(curve.steps, curve.mean) if not y0 <= m <= y1]
    if off:
        ax.plot(off, [y1] * len(off), "^", color="C3", label="mean off scale (some tasks diverge)")
    ax.set_ylim(y0, y1)
    ax.set_xlabel("episode of a trial" if episodes else "inner gradient steps at test time")
    ax.set_ylabel(curve.metric)
    ax.set_title(f"{title}\n({curve.num_tasks} held-out tasks)", fontsize=9)
    ticks = curve.steps if len(curve.steps) <= 12 else curve.steps[:: len(curve.steps) // 10]
    ax.set_xticks(ticks, [str(t + 1) for t in ticks] if episodes else [str(t) for t in ticks])
    return _save(fig, ax, path)


def plot_learning_curves(
    series: dict[str, tuple[list[float], list[float]]],
    metric: str,
    path: Path,
    smooth: int = 1,
    reference: dict[str, float] | None = None,
    xlabel: str = "outer iteration",
) -> Path:
    """One line per run (``{label: (x values, values)}``) of ``metric`` against ``xlabel``'s
    quantity, each a trailing moving average over ``smooth`` logged points; ``reference`` adds
    dashed horizontal lines (``{"MAML paper, 1 step": -78.6}``)."""
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
    for label, (iterations, values) in series.items():
        window = max(1, min(smooth, len(values)))
        averaged = [
            sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
            for i in range(len(values))
        ]
        marker = "o" if len(values) <= 30 else None  # few points: show where they are
        ax.plot(iterations, averaged, label=label, lw=1.2, marker=marker, ms=3)
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, ls="--", lw=0.9, color=f"C{(len(series) + i) % 10}", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric + (f" (moving average of {smooth})" if smooth > 1 else ""))
    return _save(fig, ax, path)


def plot_group_curves(
    groups: dict[str, tuple[list[list[float]], list[float], list[tuple[float, float]]]],
    metric: str,
    path: Path,
    points: list[str],
    reference: dict[str, list[float]] | None = None,
) -> Path:
    """Adaptation curves across seeds: per group (``{label: (per-run curves, IQM, IQM CI)}``)
    its IQM with the 95% CI band and every run as a thin line, at x ticks named by ``points``
    (``0 steps``, ``1 step``, ... or an RL² trial's episodes); ``reference`` adds dashed
    published curves."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for i, (label, (runs, iqm, ci)) in enumerate(groups.items()):
        color = f"C{i % 10}"
        steps = list(range(len(iqm)))
        for run in runs:
            ax.plot(steps, run[: len(steps)], color=color, lw=0.7, alpha=0.45)
        ax.plot(steps, iqm, color=color, marker="o", lw=2, label=f"{label} (IQM, {len(runs)} runs)")
        ax.fill_between(steps, [c[0] for c in ci], [c[1] for c in ci], color=color, alpha=0.2)
    for label, values in (reference or {}).items():
        ax.plot(range(len(values)), values, ls=":", marker="x", color="k", label=label)
    ticks = range(max(len(v[1]) for v in groups.values()))
    ax.set_xticks(ticks, [points[t] for t in ticks])
    ax.set_ylabel(metric)
    ax.set_title("thin lines: one run each; band: 95% bootstrap CI of the IQM", fontsize=8)
    return _save(fig, ax, path)


def plot_baselines(
    rows: dict[str, tuple[list[float], int | None]],
    paper: dict[str, list[float]],
    title: str,
    path: Path,
) -> Path:
    """``metarl baselines``' figure, the MAML paper's: ``rows`` ({method: (curve, env steps)})
    against gradient steps, the oracle as a line, RL² per trial episode, ``paper`` dotted; a
    row ``"<method>, test steps ..."`` (the baseline's own step sizes) dashed in its method's
    colour."""

    def method(name: str) -> str:
        base = name.split(", test steps")[0]
        return "random" if base == "random init" else base

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    names = dict.fromkeys(["MAML", *paper, *(method(n) for n in rows)])
    colors = {name: f"C{i}" for i, name in enumerate(names)}  # a method's colour, ours and paper
    for name, (values, _) in rows.items():
        color = colors[method(name)]
        if name == "oracle":
            ax.axhline(values[0], color=color, lw=1.5, label="oracle")
            continue
        marker = "s" if name == "RL²" else "o"
        ls = "--" if ", test steps" in name else "-"
        ax.plot(range(len(values)), values, color=color, marker=marker, ls=ls, lw=2, label=name)
    for name, values in paper.items():
        style = {"color": colors[name], "ls": ":", "lw": 1, "label": f"paper: {name}"}
        if len(values) == 1:
            ax.axhline(values[0], **style)
        else:
            ax.plot(range(len(values)), values, marker="x", **style)
    ax.set_xticks(range(max(len(v) for v, _ in rows.values())))
    ax.set_xlabel("gradient steps at test time (RL²: trial episode - 1)")
    ax.set_ylabel("return (40 held-out tasks)")
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, ax, path)
