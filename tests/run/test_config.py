"""Config validation: every mistake is one UserError naming the key, the value and the fix."""

from __future__ import annotations

import pytest
from cli_helpers import SINUSOID

from metarl.run.config import apply_overrides, load_config, parse_yaml, validate
from metarl.run.errors import UserError

BASE = {"domain": "fewshot", "train": {"iterations": 10}}


def test_yaml_reads_exponent_floats():
    # plain PyYAML would give the string "1e-3"
    assert parse_yaml("a: 1e-3")["a"] == pytest.approx(1e-3)


def test_unknown_key_suggests_the_closest_and_lists_allowed():
    with pytest.raises(UserError) as e:
        validate({**BASE, "algo": {"inner_lrr": 0.1}})
    msg = str(e.value)
    assert "unknown key `algo.inner_lrr`" in msg
    assert "did you mean `inner_lr`" in msg
    assert "meta_batch_size" in msg  # the allowed keys are listed


def test_string_where_a_number_goes():
    with pytest.raises(UserError) as e:
        validate({**BASE, "algo": {"inner_lr": "fast"}})
    assert "`algo.inner_lr` = 'fast'" in str(e.value)
    assert "number" in str(e.value)


def test_negative_learning_rate_names_the_bound():
    with pytest.raises(UserError) as e:
        validate({**BASE, "algo": {"outer_lr": -1.0}})
    assert "`algo.outer_lr` = -1.0" in str(e.value)
    assert "greater than 0" in str(e.value)


def test_unknown_domain_and_choice():
    with pytest.raises(UserError, match="`domain` = 'vision'"):
        validate({"domain": "vision", "train": {"iterations": 1}})
    with pytest.raises(UserError, match="'maml'"):  # the literal's allowed values are listed
        validate({**BASE, "algo": {"name": "mamll"}})


def test_overrides_are_typed_and_nested():
    cfg = load_config(SINUSOID, ["algo.inner_lr=0.05", "model.hidden_sizes=[8, 8]"])
    assert cfg.algo.inner_lr == 0.05
    assert cfg.model.hidden_sizes == [8, 8]
    with pytest.raises(UserError, match="key.sub=value"):
        apply_overrides({}, ["algo.inner_lr"])


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
