"""``metarl baselines``: the MAML paper's comparison for one meta-RL config in one command.

A baselines config (``configs/baselines/*.yaml``) names the meta-RL config whose env, policy,
inner loop, evaluation and seed the baselines share, and the budget of each baseline::

    meta_config: ../maml_trpo/navigation2d.yaml   # relative to this file
    pretrained: {learner: trpo, iterations: 100, env_steps_per_iteration: 160000}
    oracle: {learner: ppo, iterations: 100, env_steps_per_iteration: 160000}
    rl2: {iterations: 100, env_steps_per_iteration: 160000, episodes_per_trial: 2, eval_every: 10}
    test_inner_lrs: {pretrained: [0.1], random: [0.5, 0.25]}   # optional, see below

``metarl baselines CONFIG --run-dir DIR [--maml RUN ...] [--methods a,b]`` then, for each
baseline (``--methods``: a subset, e.g. to train two at once in two processes), trains it
into ``DIR/<method>`` (a normal run directory: ``algo.name: sb3``, see
:mod:`metarl.rl.sb3_baseline`), resumes it if it was stopped, extends it if the budget grew,
or collects it if it is complete (a run directory of another experiment, e.g. another seed, is
refused); evaluates an untrained policy the same way (``DIR/random``); reads the MAML runs given with
``--maml`` (their ``summary.json``; several seeds are averaged); and writes ``DIR/baselines.md``
(the table, with the paper's rows and each method's env steps) and ``DIR/baselines.png`` (the
MAML paper's figure: return after 0..3 gradient steps for MAML, pretrained and random init, the
oracle as a line, RL² per trial episode, the paper's curves dashed). ``--set`` changes a key
of a baseline's section (``--set rl2.iterations=30``: a partial budget, extended later by the
same command without it) or else of the meta config (``--set seed=1``).

Every baseline is adapted with MAML's own test-time step sizes (the meta config's
``eval.inner_lrs``), so the comparison holds the test protocol fixed. The MAML authors' test
scripts instead gave each baseline a step size of its own (``maml_examples/test_maml_*.py``:
the first step, halved after it); ``test_inner_lrs`` names such steps per baseline
(``pretrained``, ``random``), and each listed baseline is evaluated a second time with them
and gets a row of its own (``pretrained, test steps 0.2, 0.1``), saved beside its run as
``metarl evaluate --set eval.inner_lrs=[...]`` saves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat
from rich.console import Console

from metarl.rl.config import SB3Training
from metarl.schema import StrictModel

from .config import (
    apply_overrides,
    changed_keys,
    dump_config,
    override_section,
    read_config_file,
    validate,
    validate_model,
)
from .errors import UserError
from .plots import plot_baselines
from .rundir import CONFIG_NAME, checkpoint_path, evaluation_path, load_run_config

METHODS = ("pretrained", "oracle", "rl2")


class BaselineBudget(SB3Training):
    """One baseline's training (:class:`metarl.rl.config.SB3Training`, with the env steps per
    iteration stated, not defaulted), its number of run iterations and ``eval_every``: iterations
    between evaluations on the held-out tasks during training (0: only at the end), for
    learning curves against env steps (``metarl plot RUNS --x train/env_steps``)."""

    iterations: int = Field(gt=0)
    env_steps_per_iteration: int = Field(gt=0)
    eval_every: int = Field(default=0, ge=0)


class BaselinesConfig(StrictModel):
    """``meta_config`` (path, relative to the baselines config) and one section per baseline
    to train; a baseline left out is not run. ``test_inner_lrs``: test-time step sizes of a
    baseline's own (``pretrained``, ``random``), evaluated in addition to MAML's."""

    meta_config: str
    pretrained: BaselineBudget | None = None
    oracle: BaselineBudget | None = None
    rl2: BaselineBudget | None = None
    test_inner_lrs: dict[Literal["pretrained", "random"], list[PositiveFloat]] = Field(
        default_factory=dict
    )


#: the baselines config's own sections, which ``--set`` keys under them override
SECTIONS = ("pretrained", "oracle", "rl2", "test_inner_lrs")

#: keys in which a baseline's saved run may differ from the config asked for and still be
#: continued (as ``metarl train --resume`` allows): its length, evaluation tasks and device
RESUMABLE = frozenset({"train.iterations", "eval.tasks", "train.device"})


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``--set`` items for the baselines config (keys under :data:`SECTIONS`) and for the meta
    config (every other key)."""
    own = [o for o in overrides if override_section(o) in SECTIONS]
    return own, [o for o in overrides if o not in own]


def load_baselines_config(
    path: Path, overrides: list[str] | None = None
) -> tuple[BaselinesConfig, Path]:
    """The baselines config (with ``overrides`` of its sections) and the path of its meta-RL
    config."""
    raw = read_config_file(path)
    for item in overrides or []:
        section = override_section(item)
        if section in METHODS and raw.get(section) is None:
            raise UserError(
                f"--set {item}: {path} has no `{section}` section (a baseline it does not "
                f"train); add one to a copy of the config"
            )
    cfg = validate_model(BaselinesConfig, apply_overrides(raw, overrides or []), str(path))
    meta = (path.parent / cfg.meta_config).resolve()  # type: ignore[attr-defined]
    if not meta.is_file():
        raise UserError(f"{path}: meta_config {cfg.meta_config} not found (looked at {meta})")  # type: ignore[attr-defined]
    return cfg, meta  # type: ignore[return-value]


def method_config(meta: Any, method: str, budget: BaselineBudget) -> Any:
    """The run config of one baseline: the meta config with ``algo`` replaced by ``sb3``'s
    (keeping its inner loop, discount and advantage settings) and the baseline's iterations."""
    data = meta.model_dump(mode="json")
    algo = data["algo"]
    data["algo"] = {
        "name": "sb3",
        "method": method,
        **{k: algo[k] for k in ("inner", "gamma", "gae_lambda", "normalize_advantages")},
        **budget.model_dump(mode="json", exclude={"iterations", "eval_every"}),
    }
    data["train"]["iterations"] = budget.iterations
    data["train"]["eval_every"] = budget.eval_every
    return validate(data, f"{method} baseline")


def check_same_run(config: Any, run_dir: Path, may_differ: frozenset[str] = RESUMABLE) -> None:
    """Refuse to continue or collect the run in ``run_dir`` if its saved config differs from
    ``config`` in a key outside ``may_differ`` (dotted keys, or whole sections): another seed,
    env or budget setting would put a different experiment's numbers under this one's name."""
    saved = load_run_config(run_dir).model_dump(mode="json")
    changed = {
        k: v
        for k, v in changed_keys(saved, config.model_dump(mode="json")).items()
        if k not in may_differ and k.split(".")[0] not in may_differ
    }
    if changed:
        diff = ", ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in changed.items())
        raise UserError(
            f"{run_dir} holds a run of another config ({diff}); give this one its own "
            f"--run-dir, or drop the --set that changed it"
        )


def run_or_collect(config: Any, run_dir: Path, console: Console) -> dict[str, Any]:
    """Train ``run_dir`` from scratch, resume it, extend it to more iterations, or read its
    summary if it is complete; a run of another config there is refused."""
    from .checkpoint import load_checkpoint
    from .trainer import train

    summary = run_dir / "summary.json"
    if not checkpoint_path(run_dir).is_file() and not summary.is_file():
        if (run_dir / CONFIG_NAME).is_file():  # created, stopped before its first checkpoint
            load_checkpoint(checkpoint_path(run_dir))  # raises the usual "no checkpoint" error
        return train(config, run_dir, console=console)
    state = None  # the checkpoint, read once: to count its iterations and to resume from
    if summary.is_file():
        done = int(json.loads(summary.read_text())["iterations"])
    else:
        state = load_checkpoint(checkpoint_path(run_dir))
        done = int(state["iteration"])
    if done > config.train.iterations:
        raise UserError(
            f"{run_dir} ran {done} iterations, more than the {config.train.iterations} asked "
            f"for; give this budget its own --run-dir"
        )
    if done == config.train.iterations and summary.is_file():
        check_same_run(config, run_dir, frozenset({"train.device"}))
        console.print(f"{run_dir}: complete, collected", soft_wrap=True, highlight=False)
        return json.loads(summary.read_text())
    check_same_run(config, run_dir)
    if summary.is_file():
        console.print(
            f"{run_dir}: extending it from {done} iterations", soft_wrap=True, highlight=False
        )
    return train(config, run_dir, resume=True, console=console, checkpoint=state)


def random_init(
    meta: Any, run_dir: Path, console: Console, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The untrained policy adapted and evaluated as MAML's (``DIR/random/summary.json``), or
    under ``overrides`` of the meta config's eval section (``DIR/random/evaluations/...``);
    the meta config is saved beside them, and a ``DIR/random`` of another one is refused."""
    from .trainer import opened_experiment

    if (run_dir / CONFIG_NAME).is_file():
        check_same_run(meta, run_dir, frozenset({"train"}))  # training settings do not apply
    elif (run_dir / "summary.json").is_file():  # saved before the config was
        seed = json.loads((run_dir / "summary.json").read_text()).get("seed")
        if seed != meta.seed:
            raise UserError(
                f"{run_dir} holds the random init of seed {seed}, not {meta.seed}; give this "
                f"seed its own --run-dir"
            )
    config = meta
    if overrides:
        config = validate(apply_overrides(meta.model_dump(mode="json"), overrides), "random init")
        path = evaluation_path(run_dir, "test", config.eval.tasks, overrides)
    else:
        path = run_dir / "summary.json"
    if path.is_file():
        return json.loads(path.read_text())
    with opened_experiment(config) as experiment:
        curve = experiment.evaluate(config.eval.tasks, "test")
    summary = {"method": "random", "seed": meta.seed, "eval": curve.as_dict(), "env_steps": 0}
    if overrides:
        summary["overrides"] = overrides
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (run_dir / CONFIG_NAME).is_file():
        (run_dir / CONFIG_NAME).write_text(dump_config(meta))
    path.write_text(json.dumps(summary, indent=2) + "\n")
    changed = f" ({', '.join(overrides)})" if overrides else ""
    console.print(f"random init{changed}: {[round(m, 1) for m in curve.mean]}", highlight=False)
    return summary


def pretrained_own_steps(run_dir: Path, overrides: list[str]) -> list[float] | None:
    """The finished pretrained run re-evaluated under ``overrides`` (as ``metarl evaluate
    --set`` does, and saved where it saves), or None while the run is not finished. A saved
    evaluation is reused only if it is of the run's last iteration: one made before the run was
    extended is of an earlier policy."""
    from .trainer import evaluate_run

    summary = run_dir / "summary.json"
    if not summary.is_file():
        return None
    config = load_run_config(run_dir)
    config = validate(apply_overrides(config.model_dump(mode="json"), overrides), str(run_dir))
    path = evaluation_path(run_dir, "test", config.eval.tasks, overrides)  # type: ignore[attr-defined]
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("iteration") == json.loads(summary.read_text())["iterations"]:
            return saved["eval"]["mean"]
    return evaluate_run(run_dir, config, "test", None, overrides).mean


def maml_curves(run_dirs: list[Path]) -> tuple[list[float], int] | None:
    """Mean over the given MAML runs of their final adaptation curves, and their env steps."""
    if not run_dirs:
        return None
    curves, steps = [], []
    for run in run_dirs:
        path = run / "summary.json"
        if not path.is_file():
            raise UserError(f"--maml {run}: no summary.json (is the run finished?)")
        summary = json.loads(path.read_text())
        curves.append(summary["eval"]["mean"])
        steps.append(int(summary.get("env_steps", 0)))
    width = min(len(c) for c in curves)
    mean = [sum(c[i] for c in curves) / len(curves) for i in range(width)]
    return mean, max(steps)


def _steps(lrs: list[float]) -> str:
    return ", ".join(f"{lr:g}" for lr in lrs)


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def table(rows: dict[str, tuple[list[float], int | None]], paper: dict[str, list[float]]) -> str:
    """Markdown: one row per method (ours, then the paper's)."""
    lines = [
        "| method | return after 0 / 1 / 2 / 3 steps (RL²: trial episodes 1..K) | env steps |",
        "|---|---|---|",
    ]
    for name, (values, steps) in rows.items():
        lines.append(f"| {name} | {_fmt(values)} | {'' if steps is None else f'{steps:,}'} |")
    for name, values in paper.items():
        lines.append(f"| paper: {name} | {_fmt(values)} | |")
    return "\n".join(lines) + "\n"


def run_baselines(
    config_path: Path,
    run_dir: Path,
    maml_runs: list[Path],
    overrides: list[str],
    console: Console,
    methods: list[str] | None = None,
) -> str:
    """Train, resume or collect the baselines of ``config_path`` (``methods``: a subset of
    :data:`METHODS` and ``random``, default all the config names; ``overrides``: ``--set``
    items, of the baselines config's sections or else of the meta config); write the table and
    figure of every baseline whose run is complete."""
    from metarl.rl.experiment import PAPER_BASELINES, PAPER_CURVES, paper_task

    own, overrides = split_overrides(overrides)
    cfg, meta_path = load_baselines_config(config_path, own)
    meta = validate(apply_overrides(read_config_file(meta_path), overrides), str(meta_path))
    if meta.domain != "rl":  # type: ignore[attr-defined]
        raise UserError(f"{meta_path}: baselines compare meta-RL configs (domain: rl)")
    rows: dict[str, tuple[list[float], int | None]] = {}
    maml = maml_curves(maml_runs)
    if maml is not None:
        rows["MAML"] = maml
    names = {"pretrained": "pretrained", "oracle": "oracle", "rl2": "RL²", "random": "random init"}
    chosen = set(methods or [*METHODS, "random"])
    unknown = chosen - {*METHODS, "random"}
    if unknown:
        raise UserError(
            f"--methods: unknown {sorted(unknown)}; choose from {', '.join([*METHODS, 'random'])}"
        )
    for method in METHODS:
        budget = getattr(cfg, method)
        if budget is not None and method in chosen:
            summary = run_or_collect(method_config(meta, method, budget), run_dir / method, console)
        elif (run_dir / method / "summary.json").is_file():  # finished by another invocation
            if budget is not None:  # of this experiment, at this or another length
                check_same_run(method_config(meta, method, budget), run_dir / method)
            summary = json.loads((run_dir / method / "summary.json").read_text())
        else:
            continue
        rows[names[method]] = (summary["eval"]["mean"], int(summary.get("env_steps", 0)))
    if "random" in chosen or (run_dir / "random" / "summary.json").is_file():
        rows[names["random"]] = (random_init(meta, run_dir / "random", console)["eval"]["mean"], 0)
    for method, lrs in cfg.test_inner_lrs.items():  # type: ignore[attr-defined]
        overrides = [f"eval.inner_lrs=[{','.join(str(lr) for lr in lrs)}]"]
        label = f"{names[method]}, test steps {_steps(lrs)}"
        if method == "random" and names["random"] in rows:
            rows[label] = (
                random_init(meta, run_dir / "random", console, overrides)["eval"]["mean"],
                0,
            )
        elif method == "pretrained" and "pretrained" in rows:
            values = pretrained_own_steps(run_dir / "pretrained", overrides)
            if values is not None:
                rows[label] = (values, rows["pretrained"][1])
    env = meta.env  # type: ignore[attr-defined]
    env_id = env.id
    paper: dict[str, list[float]] = {}
    if paper_task(env_id, env.kwargs, env.horizon):  # not the same envs under other settings
        paper = {"MAML": PAPER_CURVES[env_id], **PAPER_BASELINES.get(env_id, {})}
    text = table(rows, paper)
    (run_dir / "baselines.md").write_text(text)
    title = f"{env_id}: baselines seed {meta.seed}, MAML runs: {len(maml_runs)}"  # type: ignore[attr-defined]
    out = plot_baselines(rows, paper, title, run_dir / "baselines.png")
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {run_dir / 'baselines.md'} and {out}", soft_wrap=True, highlight=False)
    return text
