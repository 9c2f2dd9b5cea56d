"""Few-shot on a device: every tensor the model sees, the learner's parameters and state, and
every episode live on the experiment's device; the device-built episodes are the numpy ones.

Without a GPU the checks run on PyTorch's ``meta`` device: tensors without data, so a tensor
made on the CPU by mistake shows up as a CPU device in the recorder (or as a device-mismatch
error), as it would on a GPU. The CUDA tests run where there is one
(``scripts/gpu_reproduce.sh``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from metarl.fewshot.episodes import EpisodeSampler
from metarl.fewshot.experiment import FewShotExperiment
from metarl.fewshot.image_set import LabelledImages
from metarl.fewshot.learners import _rows
from metarl.run.config import validate
from metarl.run.device import to_device

HAS_CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(
    not HAS_CUDA, reason="needs a CUDA GPU (run scripts/gpu_reproduce.sh on a GPU machine)"
)
DEVICES = ["meta", "cpu"] + (["cuda"] if HAS_CUDA else [])


def on(tensor: torch.Tensor, device: str) -> bool:
    want = torch.device(device)
    return tensor.device.type == want.type and want.index in (None, tensor.device.index)


@pytest.fixture(scope="module")
def image_task(tmp_path_factory) -> dict:
    """3-way 1-shot tasks over 12 tiny grayscale classes in ``root/<class>/<image>``."""
    root = tmp_path_factory.mktemp("device_images")
    rng = np.random.default_rng(0)
    for c in range(12):
        folder = root / "images" / f"class_{c:02d}"
        folder.mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return {
        "name": "folder",
        "folder": str(root / "images"),
        "ways": 3,
        "shots": 1,
        "query": 2,
        "image_size": 12,
        "channels": 1,
        "split": "ratio",
        "split_ratios": [0.5, 0.25, 0.25],
        "cache_dir": str(root / "cache"),
    }


def config(task: dict | None, algo: dict, model: dict | None = None):
    return validate(
        {
            "domain": "fewshot",
            "seed": 0,
            "task": task or {"name": "sinusoid", "shots": 4, "query": 3},
            "model": model or {"name": "mlp", "hidden_sizes": [8]},
            "algo": {"meta_batch_size": 2, **algo},
            "train": {"iterations": 2},
            "eval": {"tasks": 3, "steps": 1, "batch_size": 3},
        }
    )


CONV4 = {"name": "conv4", "filters": 4, "pooling": "stride", "normalization": "batch"}
CASES = {
    "maml-vmap": (None, {"name": "maml", "task_batching": "vmap"}, None),
    "fomaml-loop": (None, {"name": "fomaml", "task_batching": "loop"}, None),
    "metasgd-vmap": (None, {"name": "metasgd", "task_batching": "vmap"}, None),
    "anil-loop": (None, {"name": "anil", "task_batching": "loop"}, None),
    "reptile-batches": (
        None,
        {"name": "reptile", "inner_steps": 2, "inner_batch_size": 3, "task_batching": "vmap"},
        None,
    ),
    "reptile-carry": (
        None,
        {"name": "reptile", "inner_steps": 2, "inner_state": "carry", "task_batching": "loop"},
        None,
    ),
    "conv4-maml": ("images", {"name": "maml", "task_batching": "vmap"}, CONV4),
    "protonets": ("images", {"name": "protonets", "task_batching": "loop"}, CONV4),
}


def build(case: str, device: str, image_task: dict) -> FewShotExperiment:
    task, algo, model = CASES[case]
    return FewShotExperiment(config(image_task if task else None, algo, model), device=device)


class DeviceRecorder:
    """Forward hooks on every module of a model: the devices of the inputs, outputs and
    parameters (the ones ``functional_call`` substituted) of every call, loop or vmap."""

    def __init__(self, model: nn.Module) -> None:
        self.devices: set[torch.device] = set()
        self.calls = 0
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()]

    def _hook(self, module: nn.Module, inputs: tuple, output) -> None:
        self.calls += 1
        params = [getattr(module, name) for name in module._parameters]
        for t in [*inputs, output, *params]:
            if isinstance(t, torch.Tensor):
                self.devices.add(t.device)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def state_tensors(experiment: FewShotExperiment) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the learner: module parameters and buffers (Meta-SGD's step sizes, the
    carried Reptile state via its extra state) and the outer optimizer's state."""
    module = experiment.learner.module
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        yield name, t
    carried = getattr(module, "optimizer_state", None)
    if carried is not None:
        for i, moments in enumerate(carried[1:]):
            for name, t in moments.items():
                yield f"carried{i}.{name}", t
    optimizer = getattr(experiment.learner, "optimizer", None)
    if optimizer is not None:
        for state in optimizer.state.values():
            for key, t in state.items():
                if key != "step" and isinstance(t, torch.Tensor):  # Adam's step: on the CPU
                    yield f"adam.{key}", t


# -- episodes -------------------------------------------------------------------------------
@pytest.mark.parametrize("rotations", [False, True])
@pytest.mark.parametrize("queries", [0, 2])
def test_device_built_episodes_are_the_numpy_ones(rotations, queries):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8)
    data = LabelledImages.from_arrays(images, np.repeat(np.arange(12), 5))
    on_host = EpisodeSampler(data, 4, 2, queries, rotations)
    built_by_torch = EpisodeSampler(data, 4, 2, queries, rotations, device="cpu")
    on_meta = EpisodeSampler(data, 4, 2, queries, rotations, device="meta")
    rngs = [np.random.default_rng(7) for _ in range(3)]
    for _ in range(2):
        expected, got, shapes = (
            s.sample_tasks(3, r) for s, r in zip([on_host, built_by_torch, on_meta], rngs)
        )
        for e, g, m in zip(expected, got, shapes):
            assert torch.equal(e, g) and e.dtype == g.dtype and g.is_contiguous()
            assert m.device.type == "meta" and m.shape == e.shape and m.dtype == e.dtype
    states = [r.bit_generator.state for r in rngs]
    assert states[0] == states[1] == states[2]  # the same draws, whatever builds the batch


# -- everything on the device ----------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_every_tensor_the_model_sees_is_on_the_device(case, image_task):
    device = "meta"
    experiment = build(case, device, image_task)
    recorder = DeviceRecorder(experiment.model)
    support, query = experiment.source.sample(
        2, "train", experiment.rng, shots=experiment.learner.train_shots
    )
    assert all(on(t, device) for t in [*support, *query])
    loss, _, _ = experiment.learner.meta_step(support, query, 0, experiment.rng)
    curve = experiment.learner.curve(support, query, 1, experiment.rng)
    recorder.close()
    assert recorder.calls > 0 and {d.type for d in recorder.devices} == {"meta"}
    assert on(loss, device) and all(on(v, device) for v in curve.values())
    for name, t in state_tensors(experiment):
        assert on(t, device), name


@pytest.mark.parametrize("device", [d for d in DEVICES if d != "meta"])
@pytest.mark.parametrize("case", ["maml-vmap", "reptile-carry", "protonets"])
def test_training_and_evaluation_stay_on_the_device(case, device, image_task):
    experiment = build(case, device, image_task)
    assert experiment.device.type == torch.device(device).type
    recorder = DeviceRecorder(experiment.model)
    for it in range(2):
        metrics = experiment.train_iteration(it)
        assert np.isfinite(metrics["train/loss"])
    curve = experiment.evaluate()
    recorder.close()
    assert curve.num_tasks == 3
    assert recorder.calls > 0 and {d.type for d in recorder.devices} == {experiment.device.type}
    for name, t in state_tensors(experiment):
        assert on(t, device), name


def test_reptile_inner_batches_are_on_the_support_device():
    support = (torch.zeros(2, 6, 1, device="meta"), torch.zeros(2, 6, 1, device="meta"))
    rows = _rows(support, 4, 3, np.random.default_rng(0))
    assert rows.device.type == "meta" and rows.shape == (2, 3, 4)


@pytest.mark.filterwarnings("ignore:.*to a meta parameter")  # meta tensors hold no values
@pytest.mark.parametrize("case", ["metasgd-vmap", "reptile-carry"])
def test_a_cpu_state_loads_onto_the_experiments_device(case, image_task):
    source = build(case, "cpu", image_task)
    source.train_iteration(0)
    target = build(case, "meta", image_task)
    target.load_state_dict(source.state_dict())  # a CPU checkpoint, another device's run
    for name, t in state_tensors(target):
        assert on(t, "meta"), name
    optimizer = getattr(target.learner, "optimizer", None)
    if optimizer is not None:  # Adam keeps its step counts on the CPU
        steps = [s["step"] for s in optimizer.state.values()]
        assert steps and all(s.device.type == "cpu" for s in steps)


@NEEDS_CUDA
@pytest.mark.parametrize("case", ["conv4-maml", "protonets", "metasgd-vmap"])
def test_a_cuda_state_evaluates_on_the_cpu(case, image_task):
    gpu = build(case, "cuda", image_task)
    for it in range(2):
        gpu.train_iteration(it)
    cpu = build(case, "cpu", image_task)
    cpu.load_state_dict(to_device(gpu.state_dict(), "cpu"))
    back = build(case, "cuda", image_task)
    back.load_state_dict(to_device(cpu.state_dict(), "cuda"))  # what map_location gives
    steps = [state["step"] for state in back.learner.optimizer.state.values()]
    assert steps and all(step.device.type == "cpu" for step in steps)  # where Adam keeps them
    losses = []
    for experiment in (gpu, cpu, back):  # the same test tasks, adapted one step
        support, query = experiment.source.sample(3, "test", np.random.default_rng(5), 2)
        curve = experiment.learner.curve(support, query, 1, np.random.default_rng(6))
        losses.append(curve["loss"].cpu())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(losses[2], losses[0], rtol=1e-5, atol=1e-6)
