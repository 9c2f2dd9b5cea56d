"""The sampler settings of a meta-RL config: validation, and the resolved backend reported at the
start of training and in summary.json."""

import io
import json

import pytest
from pydantic import ValidationError
from rich.console import Console
from rl_testing import small_config

from metarl.rl import RLConfig
from metarl.run.config import validate
from metarl.run.errors import UserError
from metarl.run.trainer import train


def test_sampler_config_rejects_bad_backend_and_worker_counts():
    """As a user sees it (one line naming the key, the value and what is allowed)."""

    def error(**sampler) -> str:
        data = {**small_config().model_dump(), "sampler": sampler}
        with pytest.raises(UserError) as info:
            validate(data)
        return str(info.value)

    assert error(backend="gpu") == (
        "config: `sampler.backend` = 'gpu': Input should be 'auto', 'batched', 'vector', "
        "'process' or 'ray'"
    )
    for bad in (0, -2):
        assert error(backend="process", num_workers=bad) == (
            f"config: `sampler.num_workers` = {bad}: Input should be greater than 0"
        )
    assert "only used by backend: ray" in error(backend="process", address="auto")
    assert "applies to the process and ray backends" in error(backend="batched", num_workers=2)
    with pytest.raises(ValidationError, match="timeout_s"):
        RLConfig.model_validate({**small_config().model_dump(), "sampler": {"timeout_s": 0}})
    for bad in (0, -1.0, float("inf"), float("nan")):
        assert "`sampler.action_scale`" in error(action_scale=bad)
    ok = {**small_config().model_dump(), "sampler": {"backend": "ray", "address": "auto"}}
    assert validate(ok).sampler.address == "auto"


def test_training_prints_the_resolved_sampler_once(tmp_path):
    cfg = small_config(iterations=1)
    cfg.eval.tasks = 2
    out = io.StringIO()
    summary = train(cfg, tmp_path / "run", console=Console(file=out, width=200))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("sampler:")]
    assert len(lines) == 1 and lines[0].startswith(
        "sampler: batched (Navigation2D has a native batched env; "
    )
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["sampler_backend"] == summary["sampler_backend"] == "batched"
    assert written["sampler_workers"] is None
