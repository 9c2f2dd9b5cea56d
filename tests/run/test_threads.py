"""The ``metarl`` command makes idle OpenMP threads sleep before torch loads (metarl.threads)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import os, sys; import metarl.cli; "
    "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
)


def _probe(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_cli_sets_passive_before_torch_is_imported():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # torch not loaded yet: OpenMP will still read the variable when a command imports it
    assert _probe(env) == "PASSIVE False"


def test_cli_keeps_the_users_wait_policy():
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    assert _probe(env) == "ACTIVE False"
