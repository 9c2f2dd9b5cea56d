"""``metarl compare``: finished runs side by side, per seed and aggregated across seeds.

Each run's final evaluation (``summary.json``: mean over held-out tasks after 0..S inner steps),
or a named re-evaluation of each (``--evaluation``: e.g. every run on a paper's test tasks), is
one score per step. Runs are grouped (by default: runs whose resolved configs are equal apart
from the seeds and logging settings), and each group is summarised per step the way Agarwal et al.
(2021, "Deep RL at the edge of the statistical precipice") recommend: mean ± s.d. over seeds,
median, and the interquartile mean (IQM, the mean of the middle 50% of runs) with a 95% stratified
bootstrap confidence interval, computed by the ``rliable`` package (``reps`` resamples, default
2,000, seeded).
With fewer than four runs the IQM is the plain mean and the interval is coarse: say how many
seeds stand behind a number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import BOOKKEEPING_KEYS, flatten
from .errors import UserError
from .points import is_trial_curve, point_names
from .rundir import evaluation_path, load_run_config

#: config keys that do not change what a run learns (seeds and bookkeeping), ignored when
#: grouping by config
IGNORED_KEYS = (
    "seed",
    "policy.init_seed",
    *BOOKKEEPING_KEYS,
    "train.eval_every",
    "sampler.num_threads",
    "sampler.timeout_s",
)


@dataclass
class RunScores:
    """One finished run: its name, seed, flattened config and its evaluation curve."""

    run_dir: Path
    seed: int
    config: dict[str, Any]
    metric: str
    mean: list[float]
    stderr: list[float]
    num_tasks: int
    env_id: str | None = None
    gain_stderr: list[float] = field(default_factory=list)  # empty in older summaries
    iteration: int | None = None  # the checkpoint's iteration scored (None: not recorded)

    def gain(self) -> str:
        """The one-step gain with its paired standard error (``+13.9 ± 3.2``), ``-`` where the
        summary predates paired errors or the curve has one point."""
        if len(self.mean) < 2 or len(self.gain_stderr) < 2:
            return "-"
        return f"{self.mean[1] - self.mean[0]:+.1f} ± {fmt(self.gain_stderr[1])}"


@dataclass
class GroupSummary:
    """Per-step aggregates of one group of runs (lists indexed by inner steps)."""

    label: str
    runs: list[RunScores]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    median: list[float] = field(default_factory=list)
    iqm: list[float] = field(default_factory=list)
    iqm_ci: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "runs": [str(r.run_dir) for r in self.runs],
            "seeds": [r.seed for r in self.runs],
            "per_run": [r.mean for r in self.runs],
            "mean": self.mean,
            "std": self.std,
            "median": self.median,
            "iqm": self.iqm,
            "iqm_ci95": [list(ci) for ci in self.iqm_ci],
        }


def load_run(run_dir: Path, evaluation: str | None = None) -> RunScores:
    """A finished run's scores: its final evaluation (``summary.json``), or with ``evaluation``
    the re-evaluation ``evaluations/<evaluation>.json`` (``test-40tasks-maml_code_ant_vel``: the
    same tasks for every run, e.g. a paper's test tasks). A ``UserError`` names the run if it
    has no such evaluation."""
    config = load_run_config(run_dir)
    run_dir = Path(run_dir)
    if evaluation is None:
        path = run_dir / "summary.json"
        if not path.is_file():
            raise UserError(
                f"{run_dir} has no summary.json: it has not finished; finish it with "
                f"`metarl train --resume {run_dir}` or leave it out"
            )
    else:
        path = run_dir / "evaluations" / f"{evaluation.removesuffix('.json')}.json"
        if not path.is_file():
            made = sorted(p.stem for p in (run_dir / "evaluations").glob("*.json"))
            raise UserError(
                f"{run_dir} has no evaluation {path.name} (its evaluations: "
                f"{', '.join(made) or 'none'}); make it with `metarl evaluate {run_dir} ...` "
                "(e.g. --task-file F, --tasks N) or leave the run out"
            )
    try:
        record = json.loads(path.read_text())
        curve = record["eval"]
        flat = flatten(config.model_dump(mode="json"))
        scores = RunScores(
            run_dir=run_dir,
            seed=int(record.get("seed", config.seed)),
            config=flat,
            metric=str(curve["metric"]),
            mean=[float(x) for x in curve["mean"]],
            stderr=[float(x) for x in curve["stderr"]],
            num_tasks=int(curve["num_tasks"]),
            env_id=record.get("env_id", flat.get("env.id")),
            gain_stderr=(
                _paired_errors(run_dir, record)
                if evaluation is None
                else [float(x) for x in curve.get("gain_stderr", [])]
            ),
        )
        scored = record.get("iterations" if evaluation is None else "iteration")
        scores.iteration = None if scored is None else int(scored)
    except (ValueError, KeyError, TypeError) as e:
        what = "summary" if evaluation is None else "evaluation"
        raise UserError(
            f"{path} is not a metarl {what} ({type(e).__name__}: {e}); re-create it "
            f"with `metarl evaluate {run_dir}` or leave the run out"
        ) from e
    return scores


def _paired_errors(run_dir: Path, summary: dict[str, Any]) -> list[float]:
    """The summary's paired gain errors; for a summary written before they existed, those of
    ``metarl evaluate``'s re-evaluation of the same checkpoint on as many test tasks
    (``evaluations/test-<n>tasks.json``) if it reproduced the summary's means exactly; else
    none."""
    curve = summary["eval"]
    if "gain_stderr" in curve:
        return [float(x) for x in curve["gain_stderr"]]
    path = evaluation_path(run_dir, "test", int(curve["num_tasks"]))
    try:
        again = json.loads(path.read_text())
        same = (
            again["iteration"] == summary.get("iterations")
            and again["eval"]["mean"] == curve["mean"]
        )
        return [float(x) for x in again["eval"]["gain_stderr"]] if same else []
    except (OSError, ValueError, KeyError, TypeError):
        return []


def group_runs(runs: list[RunScores], group_by: str = "config") -> dict[str, list[RunScores]]:
    """Groups in first-seen order. ``config``: equal configs apart from :data:`IGNORED_KEYS`,
    labelled by the keys in which the groups differ; else a config key such as
    ``policy.activation``, labelled ``key=value``."""
    if group_by != "config":
        missing = [r.run_dir for r in runs if group_by not in r.config]
        if missing:
            known = sorted(runs[0].config)
            raise UserError(
                f"--group-by {group_by!r} is not a config key of {missing[0]}; use `config` or "
                f"one of: {', '.join(known)}"
            )
        groups: dict[str, list[RunScores]] = {}
        for r in runs:
            groups.setdefault(f"{group_by}={_text(r.config[group_by])}", []).append(r)
        return groups

    def key(r: RunScores) -> str:
        kept = {k: v for k, v in r.config.items() if k not in IGNORED_KEYS}
        return json.dumps(kept, sort_keys=True)

    by_key: dict[str, list[RunScores]] = {}
    for r in runs:
        by_key.setdefault(key(r), []).append(r)
    configs = [
        {k: v for k, v in g[0].config.items() if k not in IGNORED_KEYS} for g in by_key.values()
    ]
    labels = []
    for c, group in zip(configs, by_key.values()):
        keys = _label_keys(c, configs)
        if keys:
            labels.append(", ".join(f"{k}={_text(c[k])}" for k in keys))
        else:
            labels.append(f"{group[0].env_id or c.get('task.name', 'runs')}")
    return dict(zip(labels, by_key.values()))


def _label_keys(config: dict[str, Any], configs: list[dict[str, Any]]) -> list[str]:
    """The keys that tell ``config``'s group from the others: those it has whose value differs
    in some group. Under a section whose ``name`` differs between groups (``algo.name``:
    maml_trpo, promp), its name, and a key of that section only where groups of the same name
    differ in it (ProMP's ``clip_eps`` is no difference from MAML-TRPO, which has none)."""

    def named_section(key: str) -> str | None:
        parts = key.split(".")
        for i in range(len(parts) - 1, 0, -1):
            name = ".".join(parts[:i]) + ".name"
            if name != key and len({c.get(name) for c in configs}) > 1:
                return name
        return None

    keys = []
    for key in sorted(config):
        name = named_section(key)
        peers = configs if name is None else [c for c in configs if c.get(name) == config[name]]
        if any(key not in o or o[key] != config[key] for o in peers):
            keys.append(key)
    return keys


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def summarize_group(label: str, runs: list[RunScores], reps: int = 2_000) -> GroupSummary:
    """Mean, s.d., median and IQM with its 95% stratified bootstrap CI per step (rliable)."""
    from rliable import metrics

    steps = min(len(r.mean) for r in runs)
    scores = np.array([r.mean[:steps] for r in runs], dtype=np.float64)  # [runs, steps]
    out = GroupSummary(label, runs)
    out.mean = [float(x) for x in scores.mean(0)]
    out.std = [float(x) for x in (scores.std(0, ddof=1) if len(runs) > 1 else 0 * scores[0])]
    out.median = [float(x) for x in np.median(scores, 0)]

    def iqm(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[:, s]) for s in range(x.shape[1])])

    # one bootstrap for all steps: runs are resampled within each step's column (stratified),
    # so each step gets its own interval
    bootstrap = _seeded_bootstrap(scores, np.random.default_rng(0))
    interval = bootstrap.conf_int(iqm, reps=reps, size=0.95, method="percentile")
    out.iqm = [float(x) for x in iqm(scores)]
    out.iqm_ci = [(float(lo), float(hi)) for lo, hi in zip(*interval)]
    return out


def _seeded_bootstrap(scores: np.ndarray, rng: np.random.Generator):
    """rliable's ``StratifiedBootstrap`` over ``scores [runs, columns]``, drawing its indices from
    ``rng``: rliable 1.2.0's ``update_indices`` draws them from numpy's global RNG, ignoring the
    ``random_state`` it is given, so its intervals change from call to call."""
    from rliable.library import StratifiedBootstrap

    class SeededStratifiedBootstrap(StratifiedBootstrap):
        def update_indices(self) -> tuple[np.ndarray, ...]:
            indices = self.generator.choice(self._num_items, self._args_shape, replace=True)
            return (indices, *self._strata_indices)

    return SeededStratifiedBootstrap(scores, seed=rng)


def compare_runs(
    run_dirs: list[Path],
    group_by: str = "config",
    reps: int = 2_000,
    evaluation: str | None = None,
) -> list[GroupSummary]:
    """Load, group and summarise ``run_dirs`` (a ``UserError`` if none is a finished run);
    ``evaluation``: each run's ``evaluations/<evaluation>.json`` instead of its summary."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    runs = [load_run(Path(d), evaluation) for d in run_dirs]
    metrics_seen = {r.metric for r in runs}
    if len(metrics_seen) > 1:
        raise UserError(
            f"the runs report different metrics ({', '.join(sorted(metrics_seen))}); compare "
            "runs of one domain at a time"
        )
    return [summarize_group(label, g, reps) for label, g in group_runs(runs, group_by).items()]


GAIN = "1-step gain (paired s.e.)"


def column_names(groups: list[GroupSummary], points: int) -> tuple[list[str], str]:
    """The columns' names and the gain column's: inner steps, or an RL² run's trial episodes
    (its curve's points are the returns of a trial's episodes 1..K, not gradient steps)."""
    rl2 = [is_trial_curve(r.config) for g in groups for r in g.runs]
    steps, episodes = point_names(points, False), point_names(points, True)
    if all(rl2):
        return episodes, "episode 2 - 1 (paired s.e.)"
    if any(rl2):
        return [f"{n} (RL²: {e})" for n, e in zip(steps, episodes)], GAIN
    return steps, GAIN


def run_names(groups: list[GroupSummary]) -> dict[Path, str]:
    """Each run's name in the tables: its directory's name, or as many of its path's last parts
    as tell it apart from the others (``s1/rl2`` and ``s2/rl2``, not ``rl2`` twice)."""
    paths = [r.run_dir for g in groups for r in g.runs]
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        names = {p: "/".join(p.parts[-depth:]) for p in paths}
        if len(set(names.values())) == len(set(paths)):
            return names
    return {p: str(p) for p in paths}


def fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.1f}"


def reference_curves(groups: list[GroupSummary]) -> dict[str, list[float]]:
    """The published curve for the runs' task and algorithm (meta-RL: the MAML paper's run),
    when every run shares them; else ``{}``."""
    settings = set()
    for r in (r for g in groups for r in g.runs):
        kwargs = {
            k[len("env.kwargs.") :]: v for k, v in r.config.items() if k.startswith("env.kwargs.")
        }
        env = (r.config.get("env.id"), r.config.get("algo.name"), r.config.get("env.horizon"))
        settings.add((*env, json.dumps(kwargs, sort_keys=True)))
    if len(settings) != 1 or None in next(iter(settings))[:2]:
        return {}
    from metarl.rl.experiment import paper_curves

    env_id, algo, horizon, kwargs = next(iter(settings))
    return paper_curves(env_id, algo, json.loads(kwargs), horizon)


def legend(groups: list[GroupSummary]) -> str:
    """One line per group: its number in the tables, its label and its runs; then a line for
    each run scored before the end of its budget (a stopped run's summary, or a re-evaluation
    made before the run was continued), which the tables would otherwise mix in silently."""
    lines = [
        f"group {i}: {g.label} ({len(g.runs)} run{'s' * (len(g.runs) != 1)}, seeds "
        f"{', '.join(str(r.seed) for r in g.runs)})"
        for i, g in enumerate(groups, 1)
    ]
    names = run_names(groups)
    for r in (r for g in groups for r in g.runs):
        budget = r.config.get("train.iterations")
        if r.iteration is not None and budget is not None and r.iteration != budget:
            lines.append(
                f"note: {names[r.run_dir]} is scored at iteration {r.iteration} of its {budget}"
            )
    return "\n".join(lines)


def tables(groups: list[GroupSummary]) -> list[Any]:
    """Two rich tables: per-seed rows (mean ± s.e. over tasks) and the per-group aggregates;
    groups are numbered as in :func:`legend`."""
    from rich.table import Table

    steps = len(groups[0].mean)
    heads, gain = column_names(groups, steps)
    names = run_names(groups)
    metric = groups[0].runs[0].metric
    per_seed = Table(title=f"{metric} per run (mean ± s.e. over held-out tasks)")
    for name in ("group", "run", "seed", "tasks"):
        per_seed.add_column(name)
    for head in heads:
        per_seed.add_column(head, justify="right", no_wrap=True)
    per_seed.add_column(gain, justify="right", no_wrap=True)
    for i, g in enumerate(groups, 1):
        for r in g.runs:
            cells = [f"{fmt(m)} ± {fmt(e)}" for m, e in zip(r.mean[:steps], r.stderr[:steps])]
            per_seed.add_row(
                str(i), names[r.run_dir], str(r.seed), str(r.num_tasks), *cells, r.gain()
            )
    agg = Table(
        title=f"{metric} across seeds (IQM: interquartile mean, 95% stratified bootstrap CI)"
    )
    for name in ("group", "seeds", "point", "mean ± s.d.", "median", "IQM [95% CI]"):
        agg.add_column(name, justify="left" if name == "group" else "right", no_wrap=True)
    for i, g in enumerate(groups, 1):
        for s in range(steps):
            lo, hi = g.iqm_ci[s]
            agg.add_row(
                str(i) if s == 0 else "",
                str(len(g.runs)) if s == 0 else "",
                heads[s],
                f"{fmt(g.mean[s])} ± {fmt(g.std[s])}",
                fmt(g.median[s]),
                f"{fmt(g.iqm[s])} [{fmt(lo)}, {fmt(hi)}]",
            )
    return [per_seed, agg]


def markdown(groups: list[GroupSummary]) -> str:
    """The two tables of :func:`tables` as Markdown (for a results document)."""
    steps = len(groups[0].mean)
    heads, gain = column_names(groups, steps)
    names = run_names(groups)
    lines = [
        "| group | run | seed | tasks | " + " | ".join(heads) + f" | {gain} |",
        "|---" * (5 + steps) + "|",
    ]
    for i, g in enumerate(groups, 1):
        for r in g.runs:
            cells = [f"{fmt(m)} ± {fmt(e)}" for m, e in zip(r.mean[:steps], r.stderr[:steps])]
            row = [str(i), names[r.run_dir], str(r.seed), str(r.num_tasks), *cells, r.gain()]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| group | seeds | " + " | ".join(heads) + " |", "|---" * (2 + steps) + "|"]
    for i, g in enumerate(groups, 1):
        for name, values in (("mean ± s.d.", None), ("median", g.median), ("IQM [95% CI]", None)):
            if name.startswith("mean"):
                cells = [f"{fmt(m)} ± {fmt(d)}" for m, d in zip(g.mean, g.std)]
            elif name.startswith("IQM"):
                cells = [f"{fmt(q)} [{fmt(lo)}, {fmt(hi)}]" for q, (lo, hi) in zip(g.iqm, g.iqm_ci)]
            else:
                cells = [fmt(v) for v in values]
            lines.append(f"| {i}: {name} | {len(g.runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(groups: list[GroupSummary], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([g.as_dict() for g in groups], indent=2) + "\n")
    return path
