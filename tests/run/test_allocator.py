"""Freed tensor memory kept for reuse (metarl.allocator): large tensors allocated again and again
stop costing page faults, the ``metarl`` command applies it, and a user's malloc settings win."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metarl.allocator import is_glibc

pytestmark = pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")

PAGES = 64 * 2**20 // 4096  # one 64 MB tensor
WARMUP, ROUNDS = 20, 10

# Allocates, writes and frees a 64 MB tensor ROUNDS times after WARMUP such rounds and prints
# whether the setting was applied and the page faults of the last ROUNDS. (Kept memory is reused
# once the heap has grown to fit torch's aligned requests: with glibc 2.36, after 7-8 rounds.)
PROBE = f"""
import resource, sys, torch
if sys.argv[1] == "cli":
    import metarl.cli
    applied = None
else:
    from metarl.allocator import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range({WARMUP}):
    x = torch.ones(16 * 2**20); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({ROUNDS}):
    x = torch.ones(16 * 2**20); del x
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GLIBC_TUNABLES", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    applied, faults = done.stdout.split()
    return applied, int(faults)


def test_glibc_defaults_fault_in_every_large_tensor():
    # the behaviour the module exists for: each 64 MB tensor is fresh memory, page by page
    applied, faults = _faults("default")
    assert applied == "False"
    assert faults > 0.9 * ROUNDS * PAGES


def test_kept_memory_is_reused_without_faults():
    applied, faults = _faults("keep")
    assert applied == "True"
    assert faults < 0.05 * ROUNDS * PAGES


def test_the_metarl_command_keeps_freed_memory():
    _, faults = _faults("cli")
    assert faults < 0.05 * ROUNDS * PAGES


@pytest.mark.parametrize(
    "env",
    [{"MALLOC_MMAP_MAX_": "65536"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}],
)
def test_a_users_malloc_setting_wins(env):
    applied, faults = _faults("keep", **env)
    assert applied == "False"
    assert faults > 0.9 * ROUNDS * PAGES
