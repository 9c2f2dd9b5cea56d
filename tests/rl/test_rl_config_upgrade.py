"""algo is one schema per learner and the inner loop its own section; configs and run
directories written before keep loading, and ambiguous old forms name the key to change."""

import pytest
from rl_testing import small_config

from metarl.run.config import validate
from metarl.run.errors import UserError


def _raw(algo: dict, **sections) -> dict:
    return {
        "domain": "rl",
        "train": {"iterations": 1},
        "env": {"id": "metarl/Navigation2D-v0"},
        "algo": algo,
        **sections,
    }


def test_flat_inner_keys_of_old_configs_load_into_algo_inner():
    cfg = validate(_raw({"inner_lr": 0.5, "inner_steps": 2, "first_order": True}))
    assert cfg.algo.name == "maml_trpo"
    assert (cfg.algo.inner.lr, cfg.algo.inner.steps, cfg.algo.inner.first_order) == (0.5, 2, True)
    with pytest.raises(UserError, match="`algo.inner_lr` and `algo.inner.lr` are both set"):
        validate(_raw({"inner_lr": 0.5, "inner": {"lr": 0.1}}))


def test_old_run_directories_holding_the_other_learners_defaults_load():
    """Before the per-learner schemas every config.yaml held every key at its default."""
    old = small_config("reptile").model_dump(mode="json")
    old["algo"].update(max_kl=0.01, cg_iters=10, hvp_subsample=1.0, inner_lr=0.1)
    del old["algo"]["inner"]
    cfg = validate(old)
    assert cfg.algo.name == "reptile" and not hasattr(cfg.algo, "max_kl")
    old["algo"]["max_kl"] = 0.02
    with pytest.raises(UserError, match="`algo.max_kl` is a setting of maml_trpo, not reptile"):
        validate(old)


def test_unknown_keys_are_named_against_the_chosen_learners_keys():
    with pytest.raises(UserError, match=r"unknown key `algo.max_kll`; did you mean `max_kl`\?"):
        validate(_raw({"name": "maml_trpo", "max_kll": 0.1}))
    with pytest.raises(UserError, match=r"unknown key `algo.inner.lrr`; did you mean `lr`\?"):
        validate(_raw({"inner": {"lrr": 0.1}}))
    with pytest.raises(UserError, match="epsilon"):
        validate(_raw({"name": "reptile", "epsilonn": 0.1}))


def test_meta_sgd_settings_that_contradict_are_refused():
    with pytest.raises(UserError, match="remove eval.inner_lrs"):
        validate(_raw({"inner": {"learn_lr": True}}, eval={"inner_lrs": [0.1]}))
    with pytest.raises(UserError, match="Reptile does not learn step sizes"):
        validate(_raw({"name": "reptile", "inner": {"learn_lr": True}}))
    with pytest.raises(UserError, match="positive"):
        validate(_raw({"inner": {"lr": [0.1, 0.0]}}))
