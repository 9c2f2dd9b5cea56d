"""``train.device``: resolution, config errors, the device in the run's output, and checkpoints
that load on any device (a GPU-written one is simulated on a CPU machine)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import SINUSOID
from rich.console import Console

from metarl import cli
from metarl.run import trainer
from metarl.run.checkpoint import load_checkpoint, save_checkpoint
from metarl.run.config import validate
from metarl.run.device import device_name, resolve_device, to_device
from metarl.run.errors import UserError
from metarl.run.rundir import checkpoint_path, create_run_dir

NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (run scripts/gpu_reproduce.sh on a GPU machine)",
)
WITHOUT_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def sinusoid_config(**train):
    return validate(
        {
            "domain": "fewshot",
            "seed": 0,
            "task": {"name": "sinusoid", "shots": 5, "query": 5},
            "model": {"name": "mlp", "hidden_sizes": [16, 16]},
            "algo": {"name": "maml", "meta_batch_size": 4, "task_batching": "vmap"},
            "train": {"iterations": 3, "checkpoint_every": 3, "num_threads": 1, **train},
            "eval": {"tasks": 6, "steps": 1, "batch_size": 3},
        }
    )


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine, as if torch found no CUDA GPU (whatever it has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# -- resolution and config errors ---------------------------------------------------------------
def test_auto_and_cpu_resolve_to_the_cpu_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert "CPU" in device_name(torch.device("cpu"))


@WITHOUT_CUDA
def test_auto_is_the_cpu_on_this_machine():
    assert resolve_device("auto") == torch.device("cpu")
    assert trainer.run_device(sinusoid_config()) == torch.device("cpu")


@NEEDS_CUDA
def test_auto_is_the_gpu_where_there_is_one():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_line_naming_the_fix(no_cuda, name):
    with pytest.raises(UserError) as err:
        resolve_device(name)
    message = str(err.value)
    assert "\n" not in message and "`train.device: cpu`" in message and repr(name) in message


def test_the_config_checks_the_form_of_the_device():
    assert sinusoid_config().train.device == "auto"
    assert sinusoid_config(device=" CUDA:1 ").train.device == "cuda:1"
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:0", "mps"):
        with pytest.raises(UserError) as err:
            sinusoid_config(device=bad)
        message = str(err.value)
        assert "`train.device`" in message and "auto, cpu, cuda or cuda:N" in message, message


def test_meta_rl_learners_take_the_gpu_and_the_sb3_baselines_stay_on_the_cpu(monkeypatch):
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(trainer, "resolve_device", lambda name: gpu)
    for name in ("maml_trpo", "promp", "reptile"):
        for device in ("auto", "cuda"):
            rl = SimpleNamespace(
                domain="rl", train=SimpleNamespace(device=device), algo=SimpleNamespace(name=name)
            )
            assert trainer.run_device(rl) == gpu
    sb3 = SimpleNamespace(
        domain="rl", train=SimpleNamespace(device="auto"), algo=SimpleNamespace(name="sb3")
    )
    assert trainer.run_device(sb3) == torch.device("cpu")
    sb3.train.device = "cuda:0"
    with pytest.raises(UserError, match="Stable-Baselines3 baselines train on the CPU") as err:
        trainer.run_device(sb3)
    assert "`train.device: cpu`" in str(err.value)
    assert trainer.run_device(sinusoid_config(device="cuda")) == gpu


def test_cli_cuda_without_cuda_exits_2_with_one_error_line(no_cuda, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", str(SINUSOID), "--run-dir", str(run_dir), "--set", "train.device=cuda"]
    assert cli.main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "train.device: cpu" in lines[0]
    assert not run_dir.exists()  # nothing is left behind


# -- the device in the run's output ------------------------------------------------------------
def test_a_run_prints_its_device_once_and_writes_it_to_the_summary(tmp_path):
    out = io.StringIO()
    run_dir = tmp_path / "run"
    summary = trainer.train(
        sinusoid_config(device="cpu"), run_dir, console=Console(file=out, width=200)
    )
    lines = [line for line in out.getvalue().splitlines() if line.startswith("device: ")]
    assert lines == [f"device: cpu ({device_name(torch.device('cpu'))})"]
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["device"] == summary["device"] == "cpu"
    assert written["device_name"] == device_name(torch.device("cpu"))
    state = torch.load(checkpoint_path(run_dir), weights_only=True)
    assert all(t.device.type == "cpu" for t in _tensors(state))


# -- checkpoints across devices ----------------------------------------------------------------
def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)
    elif isinstance(state, list | tuple):
        for value in state:
            yield from _tensors(value)


def test_to_device_moves_nested_tensors_and_keeps_the_rest():
    from collections import OrderedDict

    weights = OrderedDict(w=torch.ones(2))
    weights._metadata = {"": {"version": 1}}
    state = {"a": [torch.zeros(1), (3, weights)], "rng": {"state": 5}, "none": None}
    moved = to_device(state, "meta")
    assert moved["a"][0].device.type == "meta"
    assert moved["a"][1][1]["w"].device.type == "meta" and moved["a"][1][0] == 3
    assert isinstance(moved["a"][1][1], OrderedDict)
    assert moved["a"][1][1]._metadata == weights._metadata
    assert moved["rng"] == {"state": 5} and moved["none"] is None


def save_as_if_on_gpu(state, path: Path, monkeypatch) -> None:
    """Write ``state`` the way a CUDA run does: every storage tagged ``cuda:0`` in the file
    (a tagger ahead of torch's own in its serialization registry, only while saving)."""
    registry = list(torch.serialization._package_registry)
    tag_cuda = (-1, lambda storage: "cuda:0", lambda storage, location: None)
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "_package_registry", [tag_cuda, *registry])
        save_checkpoint(state, path)


def test_a_gpu_written_checkpoint_evaluates_on_the_cpu(tmp_path, monkeypatch):
    config = sinusoid_config(device="cpu")
    run_dir = tmp_path / "run"
    with trainer.opened_experiment(config) as experiment:
        for it in range(3):
            experiment.train_iteration(it)
        expected = experiment.evaluate(6, "test")
        state = {"iteration": 3, "elapsed_s": 0.0, "experiment": experiment.state_dict()}
    create_run_dir(run_dir, config)
    save_as_if_on_gpu(state, checkpoint_path(run_dir), monkeypatch)
    if not torch.cuda.is_available():  # the simulation is real: torch wants the GPU back
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(checkpoint_path(run_dir), weights_only=True)
    loaded = load_checkpoint(checkpoint_path(run_dir), map_location="cpu")
    assert all(t.device.type == "cpu" for t in _tensors(loaded))
    curve = trainer.evaluate_run(run_dir, config, "test", 6)  # map_location = the run's device
    assert curve == expected
    record = json.loads((run_dir / "evaluations" / "test-6tasks.json").read_text())
    assert record["device"] == "cpu" and record["eval"]["mean"] == expected.mean
    assert record["provenance"]["packages"]["torch"] == torch.__version__  # what computed it


def test_evaluate_takes_a_device(tmp_path, monkeypatch, capsys):
    config = sinusoid_config(device="cuda")  # a GPU run's config, on this machine
    run_dir = tmp_path / "run"
    with trainer.opened_experiment(sinusoid_config(device="cpu")) as experiment:
        state = {"iteration": 0, "experiment": experiment.state_dict()}
    create_run_dir(run_dir, config)
    save_as_if_on_gpu(state, checkpoint_path(run_dir), monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["evaluate", str(run_dir), "--tasks", "3"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "`--device cpu` for evaluate" in error[0], error
    assert cli.main(["evaluate", str(run_dir), "--tasks", "3", "--device", "cpu"]) == 0
    record = json.loads((run_dir / "evaluations" / "test-3tasks.json").read_text())
    assert record["device"] == "cpu" and record["iteration"] == 0


def nav_config(device: str):
    """A meta-RL run's config, a few seconds' worth (MAML-TRPO, 2D navigation)."""
    return validate(
        {
            "domain": "rl",
            "seed": 0,
            "env": {"id": "metarl/Navigation2D-v0", "horizon": 10},
            "policy": {"hidden_sizes": [8], "activation": "tanh"},
            "algo": {"name": "maml_trpo", "meta_batch_size": 2, "episodes_per_task": 2},
            "train": {"iterations": 1, "device": device},
            "eval": {"tasks": 2, "steps": 1, "episodes_per_task": 2},
        }
    )


def test_adapt_takes_a_device(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    with trainer.opened_experiment(nav_config("cpu")) as experiment:
        experiment.train_iteration(0)
        state = {"iteration": 1, "experiment": experiment.state_dict()}
    create_run_dir(run_dir, nav_config("cuda"))  # a GPU run, on this machine
    save_as_if_on_gpu(state, checkpoint_path(run_dir), monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["adapt", str(run_dir), "--task", "goal=[0.2,0.3]", "--steps", "1", "--episodes", "2"]
    assert cli.main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "`--device cpu` for evaluate and adapt" in error[0], error
    assert cli.main([*args, "--device", "cpu"]) == 0
    (saved,) = (run_dir / "adapted").glob("adapted-*.pt")
    adapted = load_checkpoint(saved)
    assert adapted["iteration"] == 1 and len(adapted["returns"][0]) == 2


@NEEDS_CUDA
def test_a_cuda_run_checkpoints_on_the_cpu_and_evaluates_on_either(tmp_path):
    run_dir = tmp_path / "run"
    summary = trainer.train(sinusoid_config(device="cuda"), run_dir, console=Console(quiet=True))
    assert summary["device"].startswith("cuda")
    assert summary["device_name"] == torch.cuda.get_device_name()
    state = torch.load(checkpoint_path(run_dir), weights_only=True)  # no map_location needed
    assert all(t.device.type == "cpu" for t in _tensors(state))
    on_cpu = trainer.evaluate_run(run_dir, sinusoid_config(device="cpu"), "test", 6)
    on_gpu = trainer.evaluate_run(run_dir, sinusoid_config(device="cuda"), "test", 6)
    assert on_gpu.mean == pytest.approx(summary["eval"]["mean"], rel=1e-5)
    assert on_cpu.mean == pytest.approx(on_gpu.mean, rel=1e-4, abs=1e-5)
