"""``metarl``: one entry point.

    metarl train CONFIG [--set k=v ...] [--run-dir DIR] [--seed N] [--iterations N] [--eval-tasks N]
                 [--device auto|cpu|cuda|cuda:N]
    metarl train --resume RUN_DIR [--iterations N] [--device D] [--set train.keep_checkpoints_every=N ...]
    metarl evaluate RUN_DIR [--split test] [--tasks N | --task-file F] [--device D] [--set env.k=v ...]
                    [--checkpoint N|all]
    metarl adapt RUN_DIR --task velocity=2.5 [--task ...] [--steps 3] [--episodes 20] [--video F [--video-before]]
                 [--device D] [--checkpoint N]
    metarl compare RUN_DIR [RUN_DIR ...] [--group-by config|KEY] [--evaluation NAME] [--out F.png] [--json F]
                   [--markdown]
    metarl baselines CONFIG [--run-dir DIR] [--maml RUN_DIR ...] [--methods a,b] [--set k=v ...]
    metarl status RUN_DIR|DIR [...]
    metarl envs

Bad input (config, files, arguments) prints one ``error:`` line and exits with code 2; a fault of
the machine (a full disk, a dead sampler worker) prints one ``error:`` line saying what was kept
and exits with code 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from metarl.allocator import keep_freed_memory
from metarl.faults import EnvironmentFault
from metarl.run.config import BOOKKEEPING_KEYS
from metarl.run.errors import UserError
from metarl.run.stop import RunStopped
from metarl.threads import sleep_idle_threads

sleep_idle_threads()  # before any command imports torch (see metarl.threads)
keep_freed_memory()  # large tensors reuse freed memory (see metarl.allocator)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metarl", description="Meta-learning for PyTorch.")
    sub = p.add_subparsers(
        dest="command", required=True, metavar="{train,evaluate,adapt,compare,baselines,envs,plot}"
    )

    t = sub.add_parser("train", help="meta-train from a YAML config, or resume a run")
    t.add_argument("config", nargs="?", help="YAML config, e.g. configs/fewshot/sinusoid_maml.yaml")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set algo.meta_batch_size=10 (repeatable; with "
        f"--resume only {', '.join(BOOKKEEPING_KEYS)})",
    )
    t.add_argument(
        "--run-dir", type=Path, help="where to write the run (default runs/<config>-<time>)"
    )
    t.add_argument("--seed", type=int, help="override the config's seed")
    t.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint"
    )
    t.add_argument("--iterations", type=int, help="override train.iterations (outer iterations)")
    t.add_argument("--eval-tasks", type=int, help="override eval.tasks (held-out tasks evaluated)")
    t.add_argument(
        "--device",
        metavar="auto|cpu|cuda|cuda:N",
        help="override train.device (also with --resume: continue a GPU run on a CPU or back)",
    )

    e = sub.add_parser("evaluate", help="re-evaluate a run's last checkpoint")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--tasks", type=int, help="number of held-out tasks (default: the config's)")
    e.add_argument(
        "--task-file",
        type=Path,
        metavar="FILE",
        help="meta-RL: evaluate on the tasks a JSON file lists instead of drawn ones, e.g. "
        "configs/tasks/maml_code_half_cheetah_vel.json (the MAML code's 40 test velocities)",
    )
    e.add_argument(
        "--device",
        metavar="auto|cpu|cuda|cuda:N",
        help="where to evaluate (default: the run's train.device); e.g. a GPU run on a CPU",
    )
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluate under a changed env, task distribution or protocol: keys under "
        f"{', '.join(EVALUATE_SECTIONS)} and {', '.join(EVALUATE_SAMPLER_KEYS)} only (e.g. "
        "env.kwargs.velocity=com); repeatable; the result is saved under a name that lists the "
        "changes",
    )

    e.add_argument(
        "--checkpoint",
        metavar="N|all",
        help="a checkpoint the run kept (train.keep_checkpoints_every) instead of the last: "
        "its iteration N, or all of them (a learning curve, drawn to "
        "evaluations/...-by-iteration.png; a checkpoint already evaluated the same way is "
        "read back, not evaluated again)",
    )

    a = sub.add_parser("adapt", help="adapt a trained meta-RL policy to given task variants")
    a.add_argument("run_dir", type=Path)
    a.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="one task, e.g. --task velocity=2.5 (repeat for more tasks)",
    )
    a.add_argument("--steps", type=int, default=3, help="inner gradient steps (default 3)")
    a.add_argument("--episodes", type=int, default=20, help="episodes per step (default 20)")
    a.add_argument(
        "--video",
        type=Path,
        help="record an episode of the adapted policy on the first task (mp4 or gif; real "
        "time, the camera on the agent)",
    )
    a.add_argument(
        "--video-before",
        action="store_true",
        help="with --video: the policy before adaptation beside the adapted one",
    )
    a.add_argument(
        "--device",
        metavar="auto|cpu|cuda|cuda:N",
        help="where the adaptation steps compute (default: the run's train.device)",
    )
    a.add_argument(
        "--checkpoint",
        type=int,
        metavar="N",
        help="adapt the policy of the checkpoint the run kept at iteration N "
        "(train.keep_checkpoints_every) instead of the last",
    )

    c = sub.add_parser(
        "compare", help="finished runs per seed and aggregated across seeds (IQM, bootstrap CI)"
    )
    c.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    c.add_argument(
        "--group-by",
        default="config",
        metavar="config|KEY",
        help="config: runs whose configs differ only in seeds form a group (default); or a "
        "config key, e.g. policy.activation",
    )
    c.add_argument("--out", type=Path, help="PNG of the adaptation curves of every group")
    c.add_argument("--json", type=Path, help="write the per-group aggregates as JSON")
    c.add_argument(
        "--markdown", action="store_true", help="print the tables as Markdown (for docs)"
    )
    c.add_argument("--reps", type=int, default=2_000, help="bootstrap resamples (default 2000)")
    c.add_argument(
        "--evaluation",
        metavar="NAME",
        help="compare each run's re-evaluation evaluations/NAME.json (what `metarl evaluate` "
        "wrote, e.g. test-40tasks-maml_code_ant_vel for --task-file "
        "configs/tasks/maml_code_ant_vel.json) instead of its summary.json",
    )

    b = sub.add_parser(
        "baselines",
        help="pretrained, random-init, oracle and RL² baselines of a meta-RL config (trained, "
        "resumed or collected), with the MAML paper's table and figure",
    )
    b.add_argument(
        "config", type=Path, help="a baselines config, e.g. configs/baselines/navigation2d.yaml"
    )
    b.add_argument(
        "--run-dir", type=Path, help="where the baseline runs go (default runs/baselines-<config>)"
    )
    b.add_argument(
        "--maml",
        type=Path,
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="a finished MAML run of the same meta config to put beside them (repeatable: seeds "
        "are averaged)",
    )
    b.add_argument(
        "--methods",
        help="comma-separated subset of pretrained,oracle,rl2,random to train or collect "
        "(default: every baseline the config names, and random); the table also takes the "
        "finished runs of the others",
    )
    b.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of a baseline's section, e.g. --set rl2.iterations=30, or else of "
        "the meta config, e.g. --set seed=1 (repeatable)",
    )

    st = sub.add_parser(
        "status",
        help="where runs stand: training or stopped, iterations done, pace, time left, result",
    )
    st.add_argument(
        "paths", type=Path, nargs="+", metavar="RUN_DIR|DIR", help="runs, or directories of runs"
    )

    sub.add_parser("envs", help="list the registered task-distribution environments")

    pl = sub.add_parser("plot", help="plot learning curves of runs from their metrics.jsonl")
    pl.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    pl.add_argument(
        "--metric",
        action="append",
        help="logged key, repeatable (default train/return_after)",
    )
    pl.add_argument("--out", type=Path, required=True, help="PNG file to write")
    pl.add_argument("--smooth", type=int, default=1, help="moving average over N logged points")
    pl.add_argument(
        "--x",
        default="iteration",
        metavar="KEY",
        help="the x-axis: iteration (default) or a logged key, e.g. train/env_steps to compare "
        "methods (MAML, Reptile, ProMP, the SB3 baselines) at equal env steps",
    )
    pl.add_argument("--label", action="append", help="legend label per run (in order)")
    pl.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="dashed horizontal line, e.g. --reference 'MAML paper=-78.6' (repeatable)",
    )
    return p


def _positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value}")


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    from metarl.run import config as cfgmod
    from metarl.run import rundir, trainer

    _positive("--iterations", args.iterations)
    _positive("--eval-tasks", args.eval_tasks)
    extra = list(args.overrides)
    if args.iterations is not None:
        extra.append(f"train.iterations={args.iterations}")
    if args.eval_tasks is not None:
        extra.append(f"eval.tasks={args.eval_tasks}")
    if args.device is not None:
        extra.append(f"train.device={args.device}")
    if args.resume is not None:
        if args.config or args.seed is not None or args.run_dir:
            raise UserError(
                "--resume continues a run with its saved config; drop CONFIG/--seed/--run-dir "
                "(only --iterations, --eval-tasks, --device and --set of "
                f"{', '.join(BOOKKEEPING_KEYS)} may change)"
            )
        for item in args.overrides:
            if cfgmod.override_key(item) not in BOOKKEEPING_KEYS:
                raise UserError(
                    f"train --resume --set {item}: only {', '.join(BOOKKEEPING_KEYS)} can change "
                    "on resume (the rest define what the run learns); start a new run for the others"
                )
        run_dir = args.resume
        config = rundir.load_run_config(run_dir)
        if extra:
            data = cfgmod.apply_overrides(config.model_dump(mode="json"), extra)
            config = cfgmod.validate(data, "--iterations/--eval-tasks/--device/--set")
        from metarl.run.checkpoint import load_checkpoint

        state = load_checkpoint(rundir.checkpoint_path(run_dir))  # fail before touching anything
        if state["iteration"] > config.train.iterations:
            raise UserError(
                f"the checkpoint is at iteration {state['iteration']}, beyond --iterations "
                f"{config.train.iterations}"
            )
        if state["iteration"] == config.train.iterations and (run_dir / "summary.json").is_file():
            raise UserError(
                f"{run_dir} is complete (iteration {state['iteration']} of "
                f"{config.train.iterations}, summary.json written); extend it with `metarl train "
                f"--resume {run_dir} --iterations N` (N > {state['iteration']}), or re-evaluate "
                f"it with `metarl evaluate {run_dir}`"
            )
        trainer.train(config, run_dir, resume=True, console=console, checkpoint=state)
        return 0
    if not args.config:
        raise UserError("give a CONFIG file (see configs/) or --resume RUN_DIR")
    if args.seed is not None:
        extra.append(f"seed={args.seed}")
    config = cfgmod.load_config(args.config, extra)
    run_dir = args.run_dir or rundir.default_run_dir(args.config)
    rundir.refuse_existing_run(run_dir)  # before the (possibly slow) build
    trainer.train(config, run_dir, console=console)
    return 0


def cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    from metarl.run import config as cfgmod
    from metarl.run import rundir, trainer

    _positive("--tasks", args.tasks)
    if args.task_file is not None and args.tasks is not None:
        raise UserError("--task-file sets the tasks itself; drop --tasks")
    config = rundir.load_run_config(args.run_dir)
    for item in args.overrides:
        section, key = cfgmod.override_section(item), cfgmod.override_key(item)
        if section not in EVALUATE_SECTIONS and key not in EVALUATE_SAMPLER_KEYS:
            raise UserError(
                f"evaluate --set {item}: only keys under {', '.join(EVALUATE_SECTIONS)} and "
                f"{', '.join(EVALUATE_SAMPLER_KEYS)} can change at evaluation (the rest define "
                "the trained model); train a new run for the others"
            )
    config = _overridden(config, args.device, args.overrides)
    changed = f", {' '.join(args.overrides)}" if args.overrides else ""
    if args.task_file is not None:
        changed += f", tasks of {args.task_file}"
    if args.checkpoint == "all":
        from metarl.run.kept_curve import evaluate_kept, kept_table

        curves, out, reused = evaluate_kept(
            args.run_dir, config, args.split, args.tasks, args.overrides, args.task_file
        )
        tasks = next(iter(curves.values())).num_tasks
        title = f"{args.run_dir}, kept checkpoints ({args.split}, {tasks} tasks{changed})"
        console.print(kept_table(curves, title, config))
        if reused:
            console.print(
                f"iterations {', '.join(map(str, reused))}: read back from the evaluations "
                f"saved in {args.run_dir / 'evaluations'} (delete one to evaluate it again)"
            )
        console.print(f"learning curve: {out}")
        return 0
    iteration = _checkpoint_iteration(args.checkpoint)
    curve = trainer.evaluate_run(
        args.run_dir, config, args.split, args.tasks, args.overrides, iteration, args.task_file
    )
    at = "" if iteration is None else f" at iteration {iteration}"
    console.print(
        trainer.curve_table(
            curve, f"{args.run_dir}{at} ({args.split}, {curve.num_tasks} tasks{changed})", config
        )
    )
    return 0


def _checkpoint_iteration(text: str | None) -> int | None:
    """``--checkpoint N``'s iteration (None: the last checkpoint)."""
    if text is None:
        return None
    if not text.isdigit():
        raise UserError(f"--checkpoint takes an iteration N or 'all', got {text!r}")
    return int(text)


def _overridden(config, device: str | None, overrides: list[str]):
    """A run's saved config with ``--device`` and ``--set`` applied (validated again)."""
    if device is None and not overrides:
        return config
    from metarl.run import config as cfgmod

    extra = [] if device is None else [f"train.device={device}"]
    data = cfgmod.apply_overrides(config.model_dump(mode="json"), extra + overrides)
    return cfgmod.validate(data, "--set" if overrides else "--device")


#: config sections ``metarl evaluate --set`` may change (the others define the trained model)
EVALUATE_SECTIONS = ("env", "task", "eval")
#: how evaluation episodes are collected, not what was learned (``sampler.action_scale`` and the
#: action clipping and rescaling are part of the policy, so they stay as trained)
EVALUATE_SAMPLER_KEYS = ("sampler.budget", "sampler.backend", "sampler.num_workers")


def parse_task(text: str) -> dict:
    """``velocity=2.5`` or ``goal=[0.1,0.2]`` or ``a=1,b=2`` -> a task dict (values as YAML)."""
    from metarl.run.config import parse_yaml

    task = {}
    for part in _split_top(text):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--task expects KEY=VALUE (e.g. velocity=2.5), got {text!r}")
        task[key.strip()] = parse_yaml(raw, f"--task {text}")
    return task


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets (so goal=[1,2] stays whole)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def cmd_adapt(args: argparse.Namespace, console: Console) -> int:
    from metarl.run import adapt as adaptmod
    from metarl.run import rundir

    _positive("--steps", args.steps)
    _positive("--episodes", args.episodes)
    tasks = [parse_task(t) for t in args.task]
    if args.video_before and args.video is None:
        raise UserError("--video-before goes with --video FILE (the video to write)")
    config = _overridden(rundir.load_run_config(args.run_dir), args.device, [])
    adaptmod.adapt_run(
        args.run_dir,
        tasks,
        args.steps,
        args.episodes,
        args.video,
        console,
        args.video_before,
        config,
        args.checkpoint,
    )
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from metarl.run import compare
    from metarl.run.plots import plot_group_curves

    _positive("--reps", args.reps)
    groups = compare.compare_runs(args.run_dirs, args.group_by, args.reps, args.evaluation)
    if not console.is_terminal:  # piped into a file: keep run names and cells whole
        console = Console(width=max(console.width, 120))
    console.print(compare.legend(groups), markup=False, highlight=False)
    if args.markdown:
        console.print(compare.markdown(groups), markup=False, highlight=False, soft_wrap=True)
    else:
        for table in compare.tables(groups):
            console.print(table)
    if args.json:
        console.print(f"wrote {compare.write_json(groups, args.json)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        curves = {g.label: ([r.mean for r in g.runs], g.iqm, g.iqm_ci) for g in groups}
        metric = groups[0].runs[0].metric
        reference = compare.reference_curves(groups)
        points, _ = compare.column_names(groups, max(len(g.mean) for g in groups))
        console.print(f"wrote {plot_group_curves(curves, metric, args.out, points, reference)}")
    return 0


def cmd_baselines(args: argparse.Namespace, console: Console) -> int:
    from metarl.run.baselines import run_baselines

    if not args.config.is_file():
        raise UserError(f"baselines config not found: {args.config} (see configs/baselines/)")
    run_dir = args.run_dir or Path("runs") / f"baselines-{args.config.stem}"
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    try:
        run_baselines(args.config, run_dir, args.maml, args.overrides, console, methods)
    except RunStopped as e:  # the same command resumes the stopped run, then runs the rest
        again = "the same `metarl baselines` command (it resumes unfinished runs)"
        raise RunStopped(e.run_dir, e.iteration, e.signal_name, again) from None
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    from metarl.run.status import find_runs, run_status, status_table

    if not console.is_terminal:  # piped into a file: keep paths and cells whole
        console = Console(width=max(console.width, 160))
    console.print(status_table([run_status(run) for run in find_runs(args.paths)]))
    return 0


def cmd_envs(args: argparse.Namespace, console: Console) -> int:
    from metarl.run.envs_table import envs_table

    console.print(envs_table())
    return 0


def cmd_plot(args: argparse.Namespace, console: Console) -> int:
    from metarl.run.learning_curves import plot_runs

    reference = {}
    for item in args.reference:
        label, sep, value = item.rpartition("=")
        try:
            reference[label] = float(value)
        except ValueError:
            sep = ""
        if not sep or not label:
            raise UserError(f"--reference takes LABEL=NUMBER, got {item!r}")
    metrics = args.metric or ["train/return_after"]
    path = plot_runs(args.run_dirs, metrics, args.out, args.smooth, args.label, reference, x=args.x)
    console.print(f"wrote {path}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "adapt": cmd_adapt,
    "compare": cmd_compare,
    "baselines": cmd_baselines,
    "envs": cmd_envs,
    "plot": cmd_plot,
    "status": cmd_status,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    try:
        return COMMANDS[args.command](args, console)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except EnvironmentFault as e:  # a full disk, a dead sampler worker: not the user's input
        print(f"error: {e}", file=sys.stderr)
        return 3
    except RunStopped as e:  # the first SIGINT/SIGTERM: the iteration was finished and saved
        print(e, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted; continue from the last checkpoint (every train.checkpoint_every "
            "iterations) with `metarl train --resume RUN_DIR`",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
