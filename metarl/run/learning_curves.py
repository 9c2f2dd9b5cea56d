"""``metarl plot``: learning curves of one or more runs from their ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .metrics import read_metrics
from .plots import plot_learning_curves


def load_series(
    run_dir: Path, metric: str, x: str = "iteration"
) -> tuple[list[float], list[float]]:
    """``(x values, values)`` of ``metric`` in ``run_dir``, from the rows that hold both (``x``:
    the outer iteration, or a logged key such as ``train/env_steps``); a ``UserError`` naming
    the run and the available metrics if the run has no metrics or never logged them."""
    if not (run_dir / "metrics.jsonl").is_file():
        raise UserError(
            f"{run_dir} has no metrics.jsonl; pass a run directory `metarl train` wrote"
        )
    rows = read_metrics(run_dir)
    points = [(float(r[x]), float(r[metric])) for r in rows if metric in r and x in r]
    if not points:
        available = sorted({k for r in rows for k in r if k != "iteration"})
        what = repr(metric) if x == "iteration" else f"{metric!r} with {x!r}"
        raise UserError(f"{run_dir} never logged {what}; its metrics are: {available}")
    iterations, values = zip(*points)
    return list(iterations), list(values)


def plot_runs(
    run_dirs: list[Path],
    metrics: list[str],
    out: Path,
    smooth: int = 1,
    labels: list[str] | None = None,
    reference: dict[str, float] | None = None,
    x: str = "iteration",
) -> Path:
    """Plot every metric of every run into ``out`` (PNG) against ``x`` (the outer iteration,
    or a logged key, e.g. ``train/env_steps`` to compare methods at equal samples); labels
    default to the run names (with the metric appended when there are several)."""
    if labels is not None and len(labels) != len(run_dirs):
        raise UserError(
            f"got {len(labels)} --label values for {len(run_dirs)} runs; give one per run"
        )
    if smooth < 1:
        raise UserError(f"--smooth must be >= 1, got {smooth}")
    names = labels or [d.name for d in run_dirs]
    series = {
        name if len(metrics) == 1 else f"{name}: {metric}": load_series(d, metric, x)
        for name, d in zip(names, run_dirs)
        for metric in metrics
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    ylabel = metrics[0] if len(metrics) == 1 else "value"
    xlabel = "outer iteration" if x == "iteration" else x
    return plot_learning_curves(series, ylabel, out, smooth, reference, xlabel)
