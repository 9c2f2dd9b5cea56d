"""Every config under configs/ validates (a renamed or removed key would break a user's first
command), and the paper-faithful variants differ from the defaults only where they say."""

from pathlib import Path

import pytest
import yaml

from metarl.run.config import load_config

ROOT = Path(__file__).resolve().parents[2] / "configs"
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if p.parent.name != "baselines")
BASELINES = sorted((ROOT / "baselines").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_validates(path):
    config = load_config(path)
    assert config.train.iterations > 0


@pytest.mark.parametrize("path", BASELINES, ids=lambda p: p.name)
def test_shipped_baselines_config_validates_with_each_run_config(path):
    from metarl.run.baselines import METHODS, load_baselines_config, method_config

    cfg, meta_path = load_baselines_config(path)
    meta = load_config(meta_path)
    for method in METHODS:
        budget = getattr(cfg, method)
        if budget is not None:
            run = method_config(meta, method, budget)
            assert run.algo.method == method and run.env.id == meta.env.id
            # whole SB3 rollouts per iteration (checked again when the run is built)
            rollout = budget.kwargs.get("n_steps", 2048) * budget.num_envs
            assert budget.env_steps_per_iteration % rollout == 0


# What each paper-faithful variant changes back, and the value it holds (the MAML code's, or,
# for Vel's curvature subsample, the setting its published ReLU rows were run with).
PAPER_SETTINGS = {
    "half_cheetah_dir_paper.yaml": {"policy.activation": "relu", "train.iterations": 100},
    "half_cheetah_vel_paper.yaml": {
        "policy.activation": "relu",
        "policy.normalize_obs": False,
        "train.iterations": 500,
        "algo.hvp_subsample": 0.2,
    },
}


def flat(path: Path) -> dict:
    """The validated config at ``path`` as ``{"section.key": value}``."""
    from metarl.run.config import flatten

    return flatten(load_config(path).model_dump(mode="json"))


def test_paper_variants_differ_from_the_defaults_only_in_what_they_name():
    papers = sorted(ROOT.rglob("*_paper.yaml"))
    assert sorted(p.name for p in papers) == sorted(PAPER_SETTINGS)
    for paper in papers:
        a, b = flat(paper), flat(paper.with_name(paper.name.replace("_paper", "")))
        differing = {k: a[k] for k in a if a[k] != b[k]}
        assert differing == PAPER_SETTINGS[paper.name], paper.name
        # each variant extends its default and gives exactly the keys that differ
        from metarl.run.config import flatten, parse_yaml

        own = flatten(parse_yaml(paper.read_text()))
        assert own.pop("extends") == paper.name.replace("_paper", "")
        assert own == differing, paper.name


def test_promp_papers_maml_trpo_baselines_differ_from_its_promp_configs_only_in_the_outer_step():
    """configs/promp/*_maml_trpo.yaml run the ProMP paper's MAML-TRPO baseline on the task of
    the ProMP config beside it: env, policy, sampler, evaluation, tasks and episodes per
    iteration, the inner step and the advantages are the same, so their returns compare."""
    baselines = sorted((ROOT / "promp").glob("*_maml_trpo.yaml"))
    assert baselines
    for baseline in baselines:
        a, b = flat(baseline), flat(baseline.with_name(baseline.name.replace("_maml_trpo", "")))
        assert a["algo.name"] == "maml_trpo" and b["algo.name"] == "promp"
        shared = a.keys() & b.keys()
        differing = sorted(k for k in shared if a[k] != b[k])
        assert differing == ["algo.name"], baseline.name
        assert {k for k in a.keys() ^ b.keys() if not k.startswith("algo.")} == set()
        # ProMP's TRPOMAML: trust region 0.01, exact curvature
        assert a["algo.max_kl"] == 0.01 and a["algo.hvp_subsample"] == 1.0


EXTENDING = [p for p in CONFIGS if "extends" in yaml.safe_load(p.read_text())]


@pytest.mark.parametrize("path", EXTENDING, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_config_that_extends_another_gives_only_what_differs(path):
    """A key an extending config repeats with its base's value would hide what the variant
    changes; the one exception is a section it replaces whole (another `name`), which must
    name every key it keeps."""
    from metarl.run.config import flatten, parse_yaml, read_config_file

    own = parse_yaml(path.read_text())
    base = read_config_file(path.parent / own.pop("extends"))
    replaced = {
        s
        for s, v in own.items()
        if isinstance(v, dict) and "name" in v and v["name"] != base.get(s, {}).get("name")
    }
    flat_base = flatten(base)
    repeated = [
        k
        for k, v in flatten(own).items()
        if k.split(".")[0] not in replaced and flat_base.get(k) == v
    ]
    assert repeated == [], f"{path.name} repeats its base's {repeated}"
    assert replaced <= {"algo"}, replaced
