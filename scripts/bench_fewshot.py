"""End-to-end MAML meta-iterations on the real Omniglot: episode sampling + forward + backward +
optimizer step, ours (vmap / loop) vs ``higher`` on the same model and data; plus the time of the
first (decoding) and cached dataset loads.

    python scripts/bench_fewshot.py [--data DIR] [--queries 1] [--repeats 5] [--json]

``--data`` is the data root holding ``omniglot/`` (default ``$METARL_DATA``, else the project's
``../shared/datasets``). The first load decodes into a fresh temporary cache folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import higher_conv4, higher_step, ours_step  # noqa: E402

from metarl.fewshot.datasets import load_dataset  # noqa: E402
from metarl.fewshot.episodes import EpisodeSampler  # noqa: E402
from metarl.fewshot.losses import classification_loss  # noqa: E402
from metarl.fewshot.models import Conv4  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=os.environ.get("METARL_DATA", REPO.parent / "shared" / "datasets")
    )
    parser.add_argument("--queries", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default="vmap,loop,higher")
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-first-load", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {"queries": args.queries, "tasks": args.tasks, "threads": args.threads}

    with tempfile.TemporaryDirectory() as cache:
        if not args.skip_first_load:
            start = time.perf_counter()
            load_dataset("omniglot", args.data, "train", cache_dir=cache)
            result["first_load_s"] = time.perf_counter() - start
        else:
            load_dataset("omniglot", args.data, "train", cache_dir=cache)
        start = time.perf_counter()
        train = load_dataset("omniglot", args.data, "train", cache_dir=cache)
        result["cached_load_s"] = time.perf_counter() - start

    sampler = EpisodeSampler(train, 5, 1, args.queries, rotations=True)
    rng = np.random.default_rng(0)
    batch = sampler.sample_tasks(args.tasks, rng)
    steps = {}
    torch.manual_seed(0)
    for mode in args.modes.split(","):
        if mode == "higher":
            steps[mode] = higher_step(higher_conv4(), F.cross_entropy, 0.4, args.first_order)
        else:
            model = Conv4(1, 5, 64, "stride", "batch", 28)
            steps[mode] = ours_step(model, classification_loss(model), 0.4, args.first_order, mode)
    samples = {m: {"sample": [], "step": []} for m in steps}
    for round_ in range(args.repeats + 1):
        for mode in steps:
            start = time.perf_counter()
            batch = sampler.sample_tasks(args.tasks, rng)
            sampled = time.perf_counter()
            steps[mode](batch.support, batch.query)
            done = time.perf_counter()
            if round_:  # round 0 is warm-up
                samples[mode]["sample"].append(sampled - start)
                samples[mode]["step"].append(done - sampled)
    print(
        f"Omniglot 5w1s vinyals train + rotations, {args.tasks} tasks, {args.queries} query/class, "
        f"{'first' if args.first_order else 'second'} order, torch {torch.__version__}, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    if "first_load_s" in result:
        print(f"first load (decode both zips): {result['first_load_s']:.1f} s")
    print(f"cached load: {result['cached_load_s']:.2f} s")
    print("| mode | sampling ms | meta-step ms | total ms | sampling share |")
    print("|---|---|---|---|---|")
    result["ms"] = {}
    for mode, s in samples.items():
        sample = statistics.median(s["sample"]) * 1e3
        step = statistics.median(s["step"]) * 1e3
        share = sample / (sample + step)
        result["ms"][mode] = {"sample": sample, "step": step, "share": share}
        print(f"| {mode} | {sample:.1f} | {step:.1f} | {sample + step:.1f} | {100 * share:.1f}% |")
    ours = [m for m in result["ms"] if m != "higher"]
    if "higher" in result["ms"] and ours:
        best = min(ours, key=lambda m: result["ms"][m]["step"] + result["ms"][m]["sample"])
        total = lambda m: result["ms"][m]["step"] + result["ms"][m]["sample"]  # noqa: E731
        result["speedup_vs_higher"] = total("higher") / total(best)
        result["best_mode"] = best
        print(f"end to end: {best} is {result['speedup_vs_higher']:.2f}x higher")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
