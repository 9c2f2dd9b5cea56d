import io
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from rl_testing import NAV, small_config

from metarl.rl import RLConfig, build


def _train(exp, iterations):
    return [exp.train_iteration(i) for i in range(iterations)]


@pytest.mark.slow
def test_maml_trpo_improves_adapted_return_on_navigation():
    exp = build(small_config("maml_trpo"))
    before = exp.evaluate()
    metrics = _train(exp, 6)
    after = exp.evaluate()
    assert set(exp.progress_keys) <= set(metrics[-1])
    for key in ("train/kl", "train/surrogate_change", "train/ls_steps", "time/outer_s"):
        assert key in metrics[-1]
    # seeded run (horizon 50): -41.3 -> -21.7 after one step; assert a margin, not the value
    assert after.mean[1] > before.mean[1] + 10.0
    assert after.mean[1] > after.mean[0]  # adaptation helps after meta-training


def test_subsampled_curvature_still_takes_trust_region_steps():
    """hvp_subsample only changes the CG metric: steps are accepted, improve the full-batch
    surrogate and respect the KL bound measured on every episode (one- and two-step inner)."""
    for inner_steps in (1, 2):
        exp = build(small_config("maml_trpo", inner={"steps": inner_steps}, hvp_subsample=0.25))
        for m in _train(exp, 2):
            assert m["train/ls_accepted"] == 1.0  # (the KL and gain: checked independently below)
    with pytest.raises(ValidationError, match="hvp_subsample"):
        small_config("maml_trpo", hvp_subsample=0.0)


def test_removed_keys_load_at_their_old_default_and_are_refused_otherwise():
    """Run directories written before a key was removed keep loading; setting it says why it
    went."""
    from metarl.run.config import validate
    from metarl.run.errors import UserError

    data = small_config().model_dump(mode="json")
    data["algo"]["calibrate_step"] = False
    data["policy"]["init_output_scale"] = 1.0
    assert validate(data).algo.name == "maml_trpo"
    data["algo"]["calibrate_step"] = True
    with pytest.raises(UserError, match="`algo.calibrate_step` was removed: rescaling TRPO"):
        validate(data)
    data["algo"]["calibrate_step"] = False
    data["policy"]["init_output_scale"] = 0.01
    with pytest.raises(UserError, match="`policy.init_output_scale` was removed: .*delete the key"):
        validate(data)


@pytest.mark.slow
def test_reptile_improves_adapted_return_on_navigation():
    exp = build(small_config("reptile", inner={"steps": 2}, epsilon=0.5))
    before = exp.evaluate()
    _train(exp, 16)
    after = exp.evaluate()
    assert after.mean[1] > before.mean[1] + 10.0


def test_state_dict_round_trip_resumes_identically():
    cfg = small_config("maml_trpo", cg_iters=3)
    exp = build(cfg)
    _train(exp, 1)
    buffer = io.BytesIO()
    torch.save(exp.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = build(cfg)
    resumed.load_state_dict(state)
    a, b = exp.train_iteration(1), resumed.train_iteration(1)
    for key in ("train/return_before", "train/return_after", "train/kl"):
        assert a[key] == b[key]
    for k, v in exp.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k])
    # the summary's env steps are the run's training steps: the resumed process counts the
    # steps before the resume, and evaluation episodes do not count
    trained = b["train/env_steps"]
    assert trained == a["train/env_steps"] > resumed.sampler.total_steps > 0
    resumed.evaluate(num_tasks=2)
    assert resumed.summary_extra()["env_steps"] == trained


def test_evaluate_does_not_advance_training_streams():
    exp = build(small_config("reptile", inner={"steps": 1}))
    state = exp.state_dict()
    curve = exp.evaluate(num_tasks=3)
    assert curve.num_tasks == 3 and curve.steps == [0, 1] and curve.metric == "return"
    assert exp.state_dict()["task_rng"] == state["task_rng"]
    assert exp.state_dict()["sample_rng"] == state["sample_rng"]
    assert exp.evaluate(num_tasks=3) == curve  # the eval stream restarts each call


def test_adapt_to_tasks_and_invalid_task(tmp_path):
    exp = build(small_config("maml_trpo"))
    rows, params = exp.adapt_to_tasks([{"goal": [0.3, -0.2]}], steps=1, episodes=4)
    assert len(rows) == 1 and len(rows[0]) == 2 and len(params) == 1
    assert params[0]["layers.0.weight"].shape == (32, 2)
    with pytest.raises(ValueError, match="goal"):
        exp.adapt_to_tasks([{"velocity": 2.5}], steps=1, episodes=4)
    # the run layer draws the curve; the MAML paper's is drawn beside its own task only, and a
    # horizon of 50 is not the paper's navigation (100 steps)
    assert exp.reference_curves() == {}
    assert exp.summary_extra()["sampler_backend"] == "batched"


def test_adapting_to_new_dynamics_with_a_partial_task():
    """`metarl adapt RUN --task gravity=30` on a dynamics family: the other parameters keep
    the unmodified env's values, and a value outside the training range is accepted."""
    data = small_config("maml_trpo").model_dump(mode="json")
    data["env"] = {"id": "metarl/PendulumDynamics-v0", "horizon": 20}
    exp = build(RLConfig.model_validate(data))
    rows, _ = exp.adapt_to_tasks([{"gravity": 30.0}, {"mass": 0.1, "length": 3.0}], 1, 2)
    assert len(rows) == 2 and all(len(r) == 2 for r in rows)
    assert exp.task_env.get_task() == {"mass": 0.1, "length": 3.0, "gravity": 10.0}
    exp.close()


def test_env_steps_are_counted_for_learning_curves_against_samples(tmp_path):
    """``train/env_steps`` counts every training step (Pendulum never ends early: 8 tasks x 8
    episodes x 2 sampling rounds x 20 steps per iteration) and survives a checkpoint."""
    from rich.console import Console

    from metarl.run.learning_curves import load_series, plot_runs
    from metarl.run.trainer import train

    data = small_config("maml_trpo", iterations=2).model_dump(mode="json")
    data["env"] = {"id": "metarl/PendulumDynamics-v0", "horizon": 20}
    data["train"].update(log_every=1, checkpoint_every=1)
    data["eval"]["tasks"] = 2
    run = tmp_path / "run"
    train(RLConfig.model_validate(data), run, console=Console(quiet=True))
    steps, _ = load_series(run, "train/return_after", x="train/env_steps")
    assert steps == [8 * 8 * 2 * 20, 2 * 8 * 8 * 2 * 20]
    plot = plot_runs([run], ["train/return_after"], tmp_path / "c.png", x="train/env_steps")
    assert plot.stat().st_size > 0
    resumed = build(RLConfig.model_validate(data))
    resumed.load_state_dict(
        torch.load(run / "checkpoints" / "last.pt", weights_only=True)["experiment"]
    )
    assert resumed.env_steps == 2 * 8 * 8 * 2 * 20
    resumed.close()


def test_config_rejects_unknown_env_and_keys():
    with pytest.raises(ValidationError, match="registered metarl ids"):
        RLConfig.model_validate({"train": {"iterations": 1}, "env": {"id": "metarl/Nope-v0"}})
    with pytest.raises(ValidationError, match="inner_lrr"):
        RLConfig.model_validate(
            {"train": {"iterations": 1}, "env": {"id": NAV}, "algo": {"inner_lrr": 0.1}}
        )
    with pytest.raises(ValidationError):
        RLConfig.model_validate(
            {"train": {"iterations": 1}, "env": {"id": NAV}, "algo": {"max_kl": -1.0}}
        )
    for bad in ({"seed": -1}, {"policy": {"init_seed": -1}}):  # numpy would fail unnamed
        with pytest.raises(ValidationError, match="seed"):
            RLConfig.model_validate({"train": {"iterations": 1}, "env": {"id": NAV}, **bad})


def test_inner_run_uses_the_step_size_schedule():
    """lrs gives each round its step size (the last repeats): identical to manual steps."""
    exp = build(small_config("maml_trpo"))
    params = {k: v.detach() for k, v in exp.policy.named_parameters()}
    tasks = exp.task_env.sample_tasks(3, np.random.default_rng(0))
    trajs, _, adapted = exp.inner.run(
        exp.sampler, params, tasks, 4, 3, rng=np.random.default_rng(1), lrs=[0.3, 0.05]
    )
    rng, p = np.random.default_rng(1), params
    for k, lr in enumerate([0.3, 0.05, 0.05]):
        traj = exp.sampler.sample(p, tasks, 4, rng)
        torch.testing.assert_close(traj.returns, trajs[k].returns)
        p = exp.inner.step(p, exp.inner.batch(traj), first_order=True, lr=lr)
    for key in adapted:
        torch.testing.assert_close(adapted[key], p[key])
    # a different schedule gives a different adaptation
    _, _, other = exp.inner.run(
        exp.sampler, params, tasks, 4, 3, rng=np.random.default_rng(1), lrs=[0.3]
    )
    assert not torch.allclose(other["layers.0.weight"], adapted["layers.0.weight"])
    with pytest.raises(ValidationError, match="inner_lrs"):
        RLConfig.model_validate(
            {"train": {"iterations": 1}, "env": {"id": NAV}, "eval": {"inner_lrs": [0.5, 0.0]}}
        )


def test_init_seed_sets_the_initial_weights_and_nothing_else():
    def cfg(seed, init_seed=None):
        c = small_config("reptile", inner={"steps": 1})
        return c.model_copy(
            update={"seed": seed, "policy": c.policy.model_copy(update={"init_seed": init_seed})}
        )

    base, other, swapped = build(cfg(0)), build(cfg(4)), build(cfg(4, init_seed=0))
    for name, p in base.policy.named_parameters():
        torch.testing.assert_close(dict(swapped.policy.named_parameters())[name], p)
    assert not torch.equal(base.policy.layers[0].weight, other.policy.layers[0].weight)
    # the other streams stay the run seed's: tasks and exploration noise as seed 4
    assert swapped.state_dict()["task_rng"] == other.state_dict()["task_rng"]
    assert swapped.state_dict()["sample_rng"] == other.state_dict()["sample_rng"]
    assert swapped.state_dict()["task_rng"] != base.state_dict()["task_rng"]


def _query_terms(policy, params, query):
    """Per task, from torch.distributions (not metarl's losses): the Normal of every query step
    under the stacked ``params``."""
    out = []
    for i in range(query.obs.shape[0]):
        p = {k: v[i] for k, v in params.items()}
        mean, log_std = torch.func.functional_call(policy, p, (query.obs[i],))
        out.append(torch.distributions.Normal(mean, log_std.exp()))
    return out


@pytest.mark.parametrize(
    "inner", [{}, {"steps": 2}, {"learn_lr": True}, {"adapt": "head"}, {"first_order": True}]
)
def test_maml_trpo_step_respects_the_trust_region_measured_independently(inner):
    """One MAML-TRPO step on fixed episodes, checked from outside the algorithm: the adapted
    policies before and after the step, rebuilt by replaying the inner steps, differ by a KL
    (torch.distributions) within max_kl, and the importance-weighted surrogate improves."""
    exp = build(small_config("maml_trpo", inner=inner))
    algo = exp.algo
    tasks = exp.task_env.sample_tasks(8, np.random.default_rng(0))
    batch = algo.sample(algo.meta_params(), tasks)
    algo.sample = lambda meta, tasks: batch  # the step sees exactly these episodes
    adapt = algo.adaptation(batch.support)
    with torch.no_grad():
        old = _query_terms(exp.policy, adapt(algo.meta_params()), batch.query)
    m = algo.step(tasks)
    assert m["ls_accepted"] == 1.0
    with torch.no_grad():
        new = _query_terms(exp.policy, adapt(algo.meta_params()), batch.query)
    q = batch.query
    kls, old_s, new_s = [], [], []
    for i, (d0, d1) in enumerate(zip(old, new)):
        mask = q.mask[i]
        kl = torch.distributions.kl_divergence(d0, d1).sum(-1)
        kls.append((kl * mask).sum() / mask.sum())
        logp0, logp1 = d0.log_prob(q.actions[i]).sum(-1), d1.log_prob(q.actions[i]).sum(-1)
        old_s.append(-(q.advantages[i] * mask).sum() / mask.sum())  # ratio 1 before the step
        new_s.append(-((logp1 - logp0).exp() * q.advantages[i] * mask).sum() / mask.sum())
    kl = float(torch.stack(kls).mean())
    gain = float(torch.stack(old_s).mean() - torch.stack(new_s).mean())
    assert 1e-5 < kl <= 0.01 * (1 + 1e-4)
    assert gain > 0
    assert kl == pytest.approx(m["kl"], rel=1e-3)
    assert gain == pytest.approx(m["surrogate_change"], rel=1e-3)


def test_env_task_range_sets_the_training_distribution():
    """``env.kwargs.task_range`` in a config reaches the meta-batches the learner trains on."""
    cfg = small_config("maml_trpo").model_dump()
    cfg["env"]["kwargs"] = {"task_range": {"goal": [0.4, 0.5]}}
    exp = build(RLConfig.model_validate(cfg))
    seen = []
    step = exp.algo.step
    exp.algo.step = lambda tasks: seen.extend(tasks) or step(tasks)
    exp.train_iteration(0)
    goals = np.array([t["goal"] for t in seen])
    assert goals.shape == (8, 2) and goals.min() >= 0.4 and goals.max() <= 0.5


@pytest.mark.parametrize(
    "path, papers",
    [
        ("maml_trpo/navigation2d.yaml", True),
        ("maml_trpo/half_cheetah_dir.yaml", True),
        ("maml_trpo/ant_dir.yaml", True),
        ("promp/half_cheetah_dir_maml_trpo.yaml", False),  # ProMP's task: frame skip 5, 100 steps
        ("promp/ant_dir_maml_trpo.yaml", False),
        ("promp/half_cheetah_vel_maml_trpo.yaml", False),  # and targets in [0, 3]
        ("maml_trpo/half_cheetah_rand_params.yaml", False),  # not in the MAML paper
    ],
)
def test_the_maml_papers_curve_is_the_reference_only_on_its_own_tasks(path, papers):
    from metarl.rl.experiment import PAPER_CURVES, paper_curves
    from metarl.run.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / path)
    env = cfg.env
    reference = paper_curves(env.id, cfg.algo.name, env.kwargs, env.horizon)
    assert reference == ({"MAML paper": PAPER_CURVES[env.id]} if papers else {})
    if papers:  # the registered horizon written out is the same task
        horizon = 100 if "navigation" in path else 200
        assert paper_curves(env.id, "maml_trpo", {}, horizon) == reference
        assert paper_curves(env.id, "promp", {}, None) == {}  # another algorithm
