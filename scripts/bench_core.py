"""Time one MAML meta-iteration (forward, backward, optimizer step): ours (loop, vmap) vs higher.

Settings: (a) sinusoid, MLP 1-40-40-1, 25 tasks, K = 10 support and 10 query points, one inner
step; (b) Omniglot-shaped 5-way 1-shot, Conv4 (64 filters, stride 2, batch norm), 32 tasks, one
inner step, 1 and 15 query images per class (random data of the right shape). Second and first
order. ``higher`` runs the same architecture with a native ``BatchNorm2d(track_running_stats=
False)`` in its ``innerloop_ctx``. The configurations are timed round-robin (one iteration each
per round, after one warm-up round) so that load changes on the machine hit all of them
alike; the median is reported.

    python scripts/bench_core.py [--repeats 10] [--quick] [--json] [--device cuda] [--variants]

``--device`` (default ``cpu``) times the same benchmarks on that device: data and weights are
drawn on the CPU exactly as without it, then moved; on a GPU each timed step ends with a
``torch.cuda.synchronize``, so its queued work is inside the time.

``--variants`` times our second-order MAML step (vmap) on Omniglot 5-way and 20-way 1-shot (32
tasks, 1 query per class) under each speed setting that may pay on a GPU (:data:`VARIANTS`):
TF32 on or off, channels-last convolution weights, ``torch.compile`` of the meta-loss (default
and ``reduce-overhead``, which replays it with CUDA graphs; 5-way only, as compiling takes
minutes; timed and printed after the others, so a run stopped while compiling keeps their
table). A variant that fails is reported with its error instead of a time.

With ``--json`` the last line is one JSON object with every timing and ``speedup_vs_higher`` for
the default setting (Omniglot 5w1s, 1 query per class, second order, best of loop and vmap).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.core import MAML
from metarl.fewshot.losses import classification_loss
from metarl.fewshot.models import MLP, Conv4

Data = tuple[Tensor, Tensor]


def mse_loss(model: nn.Module) -> Callable:
    def loss_fn(params: dict[str, Tensor], data: Data) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = data
        return F.mse_loss(torch.func.functional_call(model, params, (x,)), y), {}

    return loss_fn


def higher_conv4(num_classes: int = 5, filters: int = 64, in_channels: int = 1) -> nn.Module:
    """The same Conv4 with native ``BatchNorm2d`` (what a ``higher`` user writes)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(4):
        layers += [
            nn.Conv2d(channels, filters, 3, stride=2, padding=1),
            nn.BatchNorm2d(filters, track_running_stats=False),
            nn.ReLU(),
        ]
        channels = filters
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(filters * 4, num_classes))


def sinusoid_data(tasks: int = 25, k: int = 10) -> tuple[Data, Data]:
    g = torch.Generator().manual_seed(0)
    amp, phase = torch.rand(tasks, 1, 1, generator=g) * 4.9 + 0.1, torch.rand(tasks, 1, 1) * 3.14
    xs = torch.rand(tasks, 2 * k, 1, generator=g) * 10 - 5
    ys = amp * torch.sin(xs - phase)
    return (xs[:, :k], ys[:, :k]), (xs[:, k:], ys[:, k:])


def omniglot_data(
    tasks: int = 32, ways: int = 5, shots: int = 1, queries: int = 1
) -> tuple[Data, Data]:
    g = torch.Generator().manual_seed(0)
    sx = torch.rand(tasks, ways * shots, 1, 28, 28, generator=g)
    qx = torch.rand(tasks, ways * queries, 1, 28, 28, generator=g)
    sy = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1).contiguous()
    qy = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1).contiguous()
    return (sx, sy), (qx, qy)


def ours_step(
    model: nn.Module,
    loss_fn: Callable,
    inner_lr: float,
    first_order: bool,
    mode: str,
) -> Callable[[Data, Data], float]:
    maml = MAML(model, loss_fn, inner_lr, 1, first_order=first_order, task_batching=mode)
    opt = torch.optim.Adam(maml.parameters(), 1e-3)

    def step(support: Data, query: Data) -> float:
        opt.zero_grad()
        loss, _ = maml.meta_loss(support, query)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def higher_step(
    model: nn.Module,
    task_loss: Callable[[Tensor, Tensor], Tensor],
    inner_lr: float,
    first_order: bool,
) -> Callable[[Data, Data], float]:
    import higher

    opt = torch.optim.Adam(model.parameters(), 1e-3)
    inner = torch.optim.SGD(model.parameters(), lr=inner_lr)

    def step(support: Data, query: Data) -> float:
        tasks = support[0].shape[0]
        opt.zero_grad()
        total = 0.0
        for i in range(tasks):
            with higher.innerloop_ctx(
                model, inner, copy_initial_weights=False, track_higher_grads=not first_order
            ) as (fmodel, diffopt):
                diffopt.step(task_loss(fmodel(support[0][i]), support[1][i]))
                loss = task_loss(fmodel(query[0][i]), query[1][i]) / tasks
                if first_order:
                    grads = torch.autograd.grad(loss, fmodel.parameters())
                    for p, g in zip(model.parameters(), grads):
                        p.grad = g if p.grad is None else p.grad + g
                else:
                    loss.backward()
                total += float(loss.detach())
        opt.step()
        return total

    return step


def _on(data: tuple[Data, Data], device: torch.device) -> tuple[Data, Data]:
    return tuple(tuple(t.to(device) for t in pair) for pair in data)  # type: ignore[return-value]


def build(quick: bool, device: torch.device) -> dict[str, Callable[[], float]]:
    torch.manual_seed(0)
    runs: dict[str, Callable[[], float]] = {}
    settings: list[tuple[str, Any]] = [("sinusoid", None), ("omniglot_5w1s_q1", 1)]
    if not quick:
        settings.append(("omniglot_5w1s_q15", 15))
    for name, queries in settings:
        for order in ("second", "first"):
            fo = order == "first"
            if queries is None:
                support, query = _on(sinusoid_data(), device)
                ours_model, lr = MLP(1, [40, 40], 1).to(device), 0.01
                ours_loss = mse_loss(ours_model)
                theirs = nn.Sequential(
                    nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1)
                ).to(device)
                theirs_loss = F.mse_loss
            else:
                support, query = _on(omniglot_data(queries=queries), device)
                ours_model, lr = Conv4(1, 5, 64, "stride", "batch", 28).to(device), 0.4
                ours_loss = classification_loss(ours_model)
                theirs, theirs_loss = higher_conv4().to(device), F.cross_entropy
            for mode in ("loop", "vmap"):
                step = ours_step(ours_model, ours_loss, lr, fo, mode)
                runs[f"{name}/{order}/{mode}"] = partial(step, support, query)
            step = higher_step(theirs, theirs_loss, lr, fo)
            runs[f"{name}/{order}/higher"] = partial(step, support, query)
    return runs


#: speed settings of ``--variants``: TF32 in matmuls (off in torch by default) and convolutions
#: (on by default), channels-last weights, torch.compile of the meta-loss
VARIANTS = ("default", "no_tf32", "tf32", "channels_last", "compile", "compile_cuda_graphs")


def _tf32(step: Callable, matmul: bool, cudnn: bool) -> Callable:
    """``step`` run with these TF32 settings (restored afterwards)."""

    def run(*args: Any) -> float:
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
        try:
            return step(*args)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

    return run


def build_variants(device: torch.device) -> dict[str, Callable[[], float]]:
    """Second-order MAML (vmap), Omniglot 5w1s and 20w1s, under each of :data:`VARIANTS`."""
    runs: dict[str, Callable[[], float]] = {}
    for ways in (5, 20):
        support, query = _on(omniglot_data(ways=ways, queries=1), device)
        for variant in VARIANTS:
            if variant.startswith("compile") and ways != 5:
                continue
            torch.manual_seed(0)
            model = Conv4(1, ways, 64, "stride", "batch", 28).to(device)
            if variant == "channels_last":
                model = model.to(memory_format=torch.channels_last)
            maml = MAML(model, classification_loss(model), 0.4, 1, task_batching="vmap")
            if variant.startswith("compile"):
                mode = "reduce-overhead" if variant == "compile_cuda_graphs" else None
                maml.meta_loss = torch.compile(maml.meta_loss, mode=mode)
            opt = torch.optim.Adam(maml.parameters(), 1e-3)

            def step(s: Data, q: Data, maml: MAML = maml, opt: Any = opt) -> float:
                opt.zero_grad()
                loss, _ = maml.meta_loss(s, q)
                loss.backward()
                opt.step()
                return float(loss.detach())

            if variant == "no_tf32":
                step = _tf32(step, False, False)
            elif variant == "tf32":
                step = _tf32(step, True, True)
            runs[f"omniglot_{ways}w1s_q1/{variant}"] = partial(step, support, query)
    return runs


def working(runs: dict[str, Callable[[], float]]) -> tuple[dict[str, Callable], dict[str, str]]:
    """The runs whose first call succeeds (it also compiles), and the others' errors."""
    ok, failed = {}, {}
    for key, run in runs.items():
        try:
            run()
            ok[key] = run
        except Exception as e:  # a speed setting this torch or GPU cannot do: report it
            failed[key] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return ok, failed


def time_round_robin(
    runs: dict[str, Callable[[], float]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median milliseconds per run; ``sync`` waits for a GPU's queued work (inside the time)."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    sync()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            sync()
            samples[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def table(ms: dict[str, float]) -> tuple[str, dict[str, Any]]:
    rows = [
        "| setting | order | loop ms | vmap ms | higher ms | best ours vs higher | faster mode |",
        "|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {}
    for key in ms:
        name, order, mode = key.split("/")
        if mode != "loop":
            continue
        loop, vmap, hi = (ms[f"{name}/{order}/{m}"] for m in ("loop", "vmap", "higher"))
        best = min(loop, vmap)
        faster = "vmap" if vmap < loop else "loop"
        cells = [name, order, f"{loop:.1f}", f"{vmap:.1f}", f"{hi:.1f}", f"{hi / best:.2f}x"]
        rows.append("| " + " | ".join([*cells, faster]) + " |")
        summary[f"{name}/{order}"] = {"speedup_vs_higher": hi / best, "faster_mode": faster}
    return "\n".join(rows), summary


def variants_table(ms: dict[str, float], failed: dict[str, str]) -> str:
    """The ``--variants`` table so far (``-``: not timed yet or not run), then the errors."""
    rows = ["", "| MAML 2nd order, vmap, 32 tasks | " + " | ".join(VARIANTS) + " |"]
    rows.append("|---|" + "---|" * len(VARIANTS))
    for ways in (5, 20):
        keys = [f"omniglot_{ways}w1s_q1/{v}" for v in VARIANTS]
        cells = [f"{ms[k]:.1f} ms" if k in ms else "failed" if k in failed else "-" for k in keys]
        rows.append(f"| Omniglot {ways}-way 1-shot | " + " | ".join(cells) + " |")
    rows += [f"{key}: {error}" for key, error in failed.items()]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no 15-query setting")
    parser.add_argument("--json", action="store_true", help="print one JSON object as last line")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--variants", action="store_true", help="also time the speed settings (VARIANTS)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch finds no CUDA GPU here; use --device cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    repeats = 3 if args.quick else args.repeats
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    ms = time_round_robin(build(args.quick, device), repeats, sync=sync)
    text, summary = table(ms)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {device} ({where}), "
        f"median of {repeats} round-robin repeats after 1 warm-up round"
    )
    print(text, flush=True)
    default = summary["omniglot_5w1s_q1/second"]
    variants: dict[str, Any] = {}
    if args.variants:
        # the eager settings first, printed before compiling starts (minutes): a run stopped
        # while compiling keeps their table
        built = build_variants(device)
        variant_ms: dict[str, float] = {}
        failed: dict[str, str] = {}
        for compiled in (False, True):
            group = {k: run for k, run in built.items() if ("/compile" in k) == compiled}
            if not group:
                continue
            runs, group_failed = working(group)
            failed.update(group_failed)
            variant_ms.update(time_round_robin(runs, repeats, warmup=2, sync=sync))
            print(variants_table(variant_ms, failed), flush=True)
        variants = {"ms": {k: round(v, 2) for k, v in variant_ms.items()}, "failed": failed}
    if args.json:
        print(
            json.dumps(
                {
                    "setting": "omniglot 5w1s, 32 tasks, 1 query/class, 2nd order, best ours",
                    "speedup_vs_higher": round(default["speedup_vs_higher"], 3),
                    "faster_mode": {k: v["faster_mode"] for k, v in summary.items()},
                    "speedups": {k: round(v["speedup_vs_higher"], 3) for k, v in summary.items()},
                    "ms": {k: round(v, 2) for k, v in ms.items()},
                    "repeats": repeats,
                    "threads": args.threads,
                    "device": str(device),
                    "device_name": where,
                    "torch": torch.__version__,
                    **({"variants": variants} if args.variants else {}),
                }
            )
        )


if __name__ == "__main__":
    main()
