#!/usr/bin/env bash
# The device checks on one CUDA GPU, in order, within about 10 minutes:
#
#   1. the device tests, few-shot and meta-RL (the CUDA-only ones run here; CI has no GPU);
#   2. scripts/bench_core.py --device cuda --variants (the core's MAML meta-iteration timings on
#      the GPU, against higher and under TF32 / channels-last / torch.compile / CUDA graphs), then scripts/bench_iteration.py on HalfCheetahVel with the MAML-TRPO learner on the CPU
#      and on the GPU (the envs step on the CPU either way);
#   3. as much as fits of Omniglot 5-way 1-shot MAML and ProtoNets at their full budgets
#      (configs/fewshot/omniglot_5w1s_{maml,protonets}.yaml, train.device=cuda), each stopped by
#      `timeout` at the end of its time share, then `metarl evaluate` of its last checkpoint on
#      the configs' 600 test tasks. Run the script again with the same output directory and each
#      run continues from its checkpoint (`metarl train --resume`) for another time share.
#
#   scripts/gpu_reproduce.sh [OUT_DIR]        # OUT_DIR: $1, else $OUT, else runs/gpu
#
# Everything it writes goes under OUT_DIR: logs, bench_core.json, the run directories and the
# decoded-image cache. The Omniglot zips are read from $METARL_DATA/omniglot (default
# data/omniglot); without them step 3 is skipped. Time shares in seconds, overridable:
# BENCH_CORE_SECONDS (default 300; its compile variants come last, so a stop keeps the eager
# timings), MAML_SECONDS (default 120), PROTONETS_SECONDS (default 80). Exit status: that of
# the tests.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-runs/gpu}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export METARL_DATA="${METARL_DATA:-data}"
export METARL_CACHE="${METARL_CACHE:-$OUT_DIR/cache}"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# nothing here renders: no OpenGL context for MuJoCo to look for on a headless GPU machine
export MUJOCO_GL="${MUJOCO_GL:-disable}"
MAML_SECONDS="${MAML_SECONDS:-120}"
BENCH_CORE_SECONDS="${BENCH_CORE_SECONDS:-300}"
PROTONETS_SECONDS="${PROTONETS_SECONDS:-80}"

# Imports and CUDA's start first, timed, under a time limit: a stuck import (seen once on a GPU
# machine, cause unknown) is then stopped after 100 s with every thread's traceback
# (faulthandler's watchdog thread also fires while the import waits in C code) instead of eating
# the budget.
timeout --kill-after=10 120 python - <<'EOF' | tee "$OUT_DIR/gpu.txt"
import faulthandler
import importlib
import time

faulthandler.dump_traceback_later(100, exit=True)

for name in ("torch", "numpy", "pydantic", "gymnasium", "mujoco", "envs", "metarl.cli"):
    start = time.perf_counter()
    module = importlib.import_module(name)
    version = getattr(module, "__version__", "")
    print(f"import {name} {version} ({time.perf_counter() - start:.1f} s)", flush=True)

import torch  # noqa: E402

if not torch.cuda.is_available():
    raise SystemExit(f"no CUDA GPU visible to torch {torch.__version__}; run this on a GPU machine")
print(f"GPU: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})")
faulthandler.cancel_dump_traceback_later()
EOF

step() { printf '\n== %s  [%s]\n' "$1" "$(date +%H:%M:%S)"; }

step "1. device tests"
tests_rc=0
python -m pytest -rs -p no:cacheprovider tests/run/test_device.py \
    tests/fewshot/test_fewshot_device.py tests/rl/test_rl_device.py 2>&1 | tee "$OUT_DIR/tests.log" || tests_rc=$?

step "2. bench_core.py --device cuda --variants (at most ${BENCH_CORE_SECONDS}s)"
bench_rc=0
timeout --kill-after=10 "$BENCH_CORE_SECONDS" python scripts/bench_core.py --device cuda \
    --variants --json | tee "$OUT_DIR/bench_core.log" || bench_rc=$?
case "$bench_rc" in
    0) tail -n 1 "$OUT_DIR/bench_core.log" > "$OUT_DIR/bench_core.json" ;;
    124 | 137) echo "bench_core.py: stopped at ${BENCH_CORE_SECONDS}s (its tables so far are above)" ;;
    *) echo "bench_core.py failed with exit status $bench_rc"; exit "$bench_rc" ;;
esac

step "2. bench_iteration.py: one MAML-TRPO HalfCheetahVel iteration, learner on cpu, then cuda"
for device in cpu cuda; do
    python scripts/bench_iteration.py --configs configs/maml_trpo/half_cheetah_vel.yaml \
        --warmup 1 --repeats 2 --device "$device" --json | tee "$OUT_DIR/bench_iteration_$device.log"
    tail -n 1 "$OUT_DIR/bench_iteration_$device.log" > "$OUT_DIR/bench_iteration_$device.json"
done

# Train CONFIG (or continue its run) for at most SECONDS, then evaluate the last checkpoint.
train_for() {
    local name="$1" seconds="$2"
    local config="configs/fewshot/$name.yaml" run="$OUT_DIR/gpu_$name" rc=0
    step "3. $name: train for at most ${seconds}s, then evaluate"
    if [[ -f "$run/checkpoints/last.pt" ]]; then
        timeout --signal=INT --kill-after=30 "$seconds" \
            python -m metarl.cli train --resume "$run" 2>&1 | tee -a "$run.log" || rc=$?
    else
        rm -rf "$run"  # a run killed before its first checkpoint: start again
        timeout --signal=INT --kill-after=30 "$seconds" \
            python -m metarl.cli train "$config" --run-dir "$run" --set train.device=cuda \
            --set train.checkpoint_every=250 2>&1 | tee "$run.log" || rc=$?
    fi
    case "$rc" in
        0) echo "$name: the full budget finished" ;;
        124 | 130) echo "$name: stopped at its time share (continue: rerun this script)" ;;
        *) echo "$name: metarl train failed with exit status $rc"; return "$rc" ;;
    esac
    if [[ ! -f "$run/checkpoints/last.pt" ]]; then
        echo "$name: no checkpoint within ${seconds}s; nothing to evaluate"
        return 0
    fi
    python -m metarl.cli evaluate "$run" --split test 2>&1 | tee "$run.evaluate.log"
}

if [[ -f "$METARL_DATA/omniglot/images_background.zip" || -d "$METARL_DATA/omniglot/images_background" ]]; then
    train_for omniglot_5w1s_maml "$MAML_SECONDS"
    train_for omniglot_5w1s_protonets "$PROTONETS_SECONDS"
else
    step "3. skipped: no Omniglot at $METARL_DATA/omniglot (set METARL_DATA)"
fi

step "done: $OUT_DIR (device tests exit status $tests_rc)"
exit "$tests_rc"
