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


def _float_fields(model, prefix=""):
    """Dotted names of every float-valued field (float, optional, or a list of floats) of a
    config model and its nested sections."""
    import typing

    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = typing.get_args(ann)
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            out += _float_fields(nested[0], f"{prefix}{name}.")
        elif any(typing.get_origin(a) in (list, tuple) for a in (ann, *args)):
            if float in [t for a in (ann, *args) for t in typing.get_args(a)]:
                out.append((f"{prefix}{name}", True))  # a list or tuple of floats
        elif float in (ann, *args):
            out.append((f"{prefix}{name}", False))
    return out


@pytest.mark.parametrize("domain", ["rl", "fewshot"])
def test_every_float_field_rejects_nan_and_infinity(domain):
    from metarl.run.config import domain_schema

    base = (
        "configs/maml_trpo/navigation2d.yaml"
        if domain == "rl"
        else str(SINUSOID.relative_to(SINUSOID.parents[2]))
    )
    root = SINUSOID.parents[2]
    fields = _float_fields(domain_schema(domain))
    names = [name for name, _ in fields]
    assert ("algo.max_kl" if domain == "rl" else "algo.outer_lr") in names  # the walk works
    for name, is_list in fields:
        for bad in (".inf", "-.inf", ".nan"):
            value = f"[{bad}, {bad}, {bad}]" if is_list else bad
            with pytest.raises(UserError, match=f"`{name}[^`]*`.*finite"):
                load_config(root / base, [f"{name}={value}"])


def test_extends_merges_sections_key_by_key_and_replaces_another_algo(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "promp.yaml").write_text(
        "domain: rl\nseed: 3\ntrain: {iterations: 2}\nenv: {id: metarl/Navigation2D-v0, horizon: 50}\n"
        "policy: {hidden_sizes: [16, 16], activation: tanh}\n"
        "algo: {name: promp, meta_batch_size: 4, clip_eps: 0.2, inner: {lr: 0.2}}\n"
    )
    (tmp_path / "mid.yaml").write_text(
        "extends: base/promp.yaml\npolicy: {activation: relu}\n"
        "algo: {clip_eps: 0.1}  # same algorithm: merged\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: mid.yaml\nalgo: {name: maml_trpo, max_kl: 0.02}  # another: replaced\n"
    )
    mid = load_config(tmp_path / "mid.yaml")
    assert mid.seed == 3 and mid.env.horizon == 50
    assert mid.policy.hidden_sizes == [16, 16] and mid.policy.activation == "relu"
    assert mid.algo.clip_eps == 0.1 and mid.algo.meta_batch_size == 4 and mid.algo.inner.lr == 0.2
    child = load_config(tmp_path / "child.yaml", ["algo.cg_iters=5"])  # --set on top
    assert child.algo.name == "maml_trpo" and child.algo.max_kl == 0.02
    assert child.algo.cg_iters == 5 and child.policy.activation == "relu"
    defaults = validate(
        {"domain": "rl", "train": {"iterations": 2}, "env": {"id": "metarl/Navigation2D-v0"}}, "x"
    )
    assert child.algo.meta_batch_size == defaults.algo.meta_batch_size  # not promp's 4
    assert child.algo.inner.lr == defaults.algo.inner.lr


@pytest.mark.parametrize(
    "text, message",
    [
        ("extends: nowhere.yaml\n", "extends nowhere.yaml, which is not a file"),
        ("extends: [a.yaml]\n", "`extends` names the config this one builds on"),
        ("extends: loop.yaml\n", "`extends` goes round in a circle"),
    ],
)
def test_a_bad_extends_is_one_clear_error(tmp_path, text, message):
    (tmp_path / "loop.yaml").write_text("extends: c.yaml\nseed: 1\n")
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(UserError, match=message):
        load_config(tmp_path / "c.yaml")
