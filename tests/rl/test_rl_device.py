"""Meta-RL on a device: the learner (policy, step sizes, inner steps, baseline fits, TRPO and
ProMP steps, evaluation) computes on the experiment's device; the envs step on the CPU, with one
transfer each way per sampling phase.

Without a GPU two checks stand in for one. The sampler's transfer runs on PyTorch's ``meta``
device (tensors without data). The learner cannot (it reads values: line searches, baseline
fits), so every meta-RL learner runs here on the CPU under :class:`HostTensors`, which records
each place in metarl's learner code that would put a tensor on the CPU on a GPU run: a tensor
made without ``device=`` (torch's default device is the CPU), or read into numpy without moving
it to the CPU first (a CUDA tensor has no numpy view). The CUDA tests run where there is one
(``scripts/gpu_reproduce.sh``).
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from rl_testing import NAV, nav_tasks, small_config
from torch.overrides import TorchFunctionMode

import metarl
from metarl.core import named_params
from metarl.rl import build
from metarl.rl.sampling.sampler import Sampler
from metarl.run.device import to_device

HAS_CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(
    not HAS_CUDA, reason="needs a CUDA GPU (run scripts/gpu_reproduce.sh on a GPU machine)"
)
METARL = Path(metarl.__file__).parent
TORCH = Path(torch.__file__).parent
#: code that runs on the CPU by design: the rollouts (and the policy's sampling of actions in
#: them), and what the experiment computes once at construction
HOST_SIDE = (METARL / "rl" / "sampling", METARL / "rl" / "obs_statistics.py")
HOST_FUNCTIONS = {"sample_actions"}
FACTORIES = {
    torch.arange,
    torch.as_tensor,
    torch.empty,
    torch.eye,
    torch.full,
    torch.linspace,
    torch.ones,
    torch.rand,
    torch.randint,
    torch.randn,
    torch.scalar_tensor,
    torch.tensor,
    torch.zeros,
}


class HostTensors(TorchFunctionMode):
    """Records ``file:line`` of metarl learner code that makes a tensor without ``device=`` or
    calls ``.numpy()`` on a tensor that did not come from ``.cpu()``."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.calls = 0
        self._on_host: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is torch.Tensor.cpu:
            self._on_host[id(out)] = out
            return out
        if func in FACTORIES or func is torch.Tensor.numpy:
            where = learner_caller()
            if where is not None:
                self.calls += 1
                keeps = func is torch.as_tensor and isinstance(args[0], torch.Tensor)  # its device
                if func in FACTORIES and "device" not in kwargs and not keeps:
                    self.found.append(f"torch.{func.__name__} without device= at {where}")
                elif func is torch.Tensor.numpy and self._on_host.get(id(args[0])) is not args[0]:
                    self.found.append(f".numpy() of a tensor not moved to the CPU at {where}")
        return out


def learner_caller() -> str | None:
    """``file:line`` of the first frame outside torch and this file, if it is metarl's learner
    code (not its host side), else None."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if not (path.is_relative_to(TORCH) or path == Path(__file__)):
            break
        frame = frame.f_back
    if frame is None or not path.is_relative_to(METARL):
        return None
    scopes = set(frame.f_code.co_qualname.split("."))  # sample_actions.<locals>.<genexpr>
    if any(path.is_relative_to(h) for h in HOST_SIDE) or scopes & HOST_FUNCTIONS:
        return None
    return f"{path.relative_to(METARL.parent)}:{frame.f_lineno}"


def tiny(algo: str, **algo_kwargs):
    """:func:`small_config` cut to a few seconds: 3 tasks x 3 episodes of 15 steps."""
    cfg = small_config(algo, iterations=1, **algo_kwargs)
    data = cfg.model_dump(mode="json")
    data["env"]["horizon"] = 15
    data["algo"]["meta_batch_size"] = 3
    data["algo"]["episodes_per_task"] = 3
    data["eval"].update(tasks=3, episodes_per_task=3, steps=2)
    return type(cfg).model_validate(data)


LEARNERS = {
    "maml_trpo": ("maml_trpo", {}),  # one plain step, exact curvature: the fast path
    "maml_trpo-subsampled": ("maml_trpo", {"hvp_subsample": 0.5}),
    "metasgd-2steps": ("maml_trpo", {"inner": {"steps": 2, "learn_lr": True}}),
    "anil-schedule": ("maml_trpo", {"inner": {"lr": [0.2, 0.1], "steps": 2, "adapt": "head"}}),
    "promp": ("promp", {}),
    "reptile-adam": ("reptile", {"inner": {"steps": 2, "optimizer": "adam"}}),
}


def test_the_recorder_finds_what_a_gpu_run_would_put_on_the_cpu():
    """The check itself: it flags a factory without a device and a numpy read of a tensor that
    was not moved to the CPU, in metarl code, and nothing done right."""
    from metarl.rl import returns

    code = compile(
        "def leak(x):\n"
        "    a = torch.arange(3)\n"
        "    b = torch.zeros(3, device=x.device)\n"
        "    c = x.numpy()\n"
        "    d = x.cpu().numpy()\n"
        "    return a, b, c, d\n",
        returns.__file__,  # as if it were written in a metarl learner file
        "exec",
    )
    namespace = {"torch": torch}
    exec(code, namespace)
    with HostTensors() as recorder:
        namespace["leak"](torch.ones(3))
    assert len(recorder.found) == 2, recorder.found
    assert "torch.arange without device=" in recorder.found[0]
    assert ".numpy() of a tensor not moved" in recorder.found[1]
    assert "metarl/rl/returns.py:2" in recorder.found[0]


@pytest.mark.parametrize("case", sorted(LEARNERS))
def test_every_learner_keeps_its_tensors_on_the_experiment_device(case):
    algo, kwargs = LEARNERS[case]
    cfg = tiny(algo, **kwargs)
    cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"normalize_obs": True})})
    exp = build(cfg, device="cpu")
    try:
        with HostTensors() as recorder:
            metrics = exp.train_iteration(0)  # with the diagnostics
            curve = exp.evaluate(3)
            rows, adapted = exp.adapt_to_tasks([{"goal": [0.1, 0.2]}], 1, 2)
            exp.load_state_dict(exp.state_dict())
        assert recorder.found == []
        assert recorder.calls > 0  # the learner's own tensor making and numpy reads ran
        assert np.isfinite(metrics["train/return_after"]) and len(curve.mean) == 3
        assert len(rows[0]) == 2 and adapted[0].keys() == named_params(exp.policy).keys()
    finally:
        exp.close()


def test_the_sampler_moves_the_episodes_to_its_device_once(small_policy):
    with Sampler(NAV, small_policy, backend="batched", device="meta") as sampler:
        assert sampler.policy is small_policy  # a CPU policy needs no copy
        traj = sampler.sample(named_params(small_policy), nav_tasks(2), 3, np.random.default_rng(0))
        moved = [traj.obs, traj.actions, traj.rewards, traj.mask, traj.returns, traj.lengths]
        assert all(t.device.type == "meta" for t in moved)
        assert sampler.total_steps > 0  # counted on the CPU, before the transfer
    with Sampler(NAV, small_policy, backend="batched") as sampler:  # default: stays on the CPU
        traj = sampler.sample(named_params(small_policy), nav_tasks(2), 3, np.random.default_rng(0))
        assert traj.obs.device.type == "cpu"


# -- on a GPU (scripts/gpu_reproduce.sh) --------------------------------------------------------
@NEEDS_CUDA
@pytest.mark.parametrize("case", sorted(LEARNERS))
def test_on_the_gpu_every_learner_trains_evaluates_and_checkpoints_there(case):
    algo, kwargs = LEARNERS[case]
    cfg = tiny(algo, **kwargs)
    cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"normalize_obs": True})})
    gpu, cpu = build(cfg, device="cuda"), build(cfg, device="cpu")
    try:
        assert all(t.is_cuda for t in (*gpu.policy.parameters(), *gpu.policy.buffers()))
        assert not any(t.is_cuda for t in gpu.sampler.policy.parameters())  # its CPU copy
        for name, value in gpu.policy.state_dict().items():  # the same initial policy
            assert torch.equal(value.cpu(), cpu.policy.state_dict()[name]), name
        theta = {k: v.detach().clone() for k, v in named_params(cpu.policy).items()}
        m_gpu, m_cpu = gpu.train_iteration(0), cpu.train_iteration(0)
        assert gpu.algo.pre_update_episodes.obs.is_cuda
        # the same parameters sampled the pre-update episodes, with the same noise
        assert m_gpu["train/return_before"] == m_cpu["train/return_before"]
        # the same update, up to floating-point order (later rounds' episodes follow the
        # slightly different adapted parameters)
        assert all(v.is_cuda for v in named_params(gpu.policy).values())
        step_gpu = torch.cat(
            [(v.cpu() - theta[k]).flatten() for k, v in named_params(gpu.policy).items()]
        )
        step_cpu = torch.cat(
            [(v - theta[k]).flatten() for k, v in named_params(cpu.policy).items()]
        )
        assert step_cpu.norm() > 0
        assert (step_gpu - step_cpu).norm() < 0.05 * step_cpu.norm()
        for lr in (gpu.learned_lrs() or {}).values():
            assert lr.is_cuda
        assert np.isfinite(gpu.evaluate(3).mean).all()
        state = gpu.state_dict()
        cpu.load_state_dict(to_device(state, "cpu"))  # as a checkpoint loads onto the CPU
        for name, value in cpu.policy.state_dict().items():
            assert torch.equal(value, state["policy"][name].cpu()), name
        gpu.load_state_dict(to_device(cpu.state_dict(), "cuda"))  # and back
        for name, value in gpu.sampler.policy.state_dict().items():  # its CPU copy follows
            assert torch.equal(value, cpu.policy.state_dict()[name]), name
        gpu.train_iteration(1)
    finally:
        gpu.close()
        cpu.close()
