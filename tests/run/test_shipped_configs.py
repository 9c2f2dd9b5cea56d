"""Every config under configs/ validates (a renamed or removed key would break a user's first
command), and the paper-faithful variants differ from the defaults only where they say."""

from pathlib import Path

import pytest

from metarl.run.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_validates(path):
    config = load_config(path)
    assert config.train.iterations > 0
