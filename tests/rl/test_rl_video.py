"""Videos of adapted policies: real-time frame rate, the camera on the agent, side by side."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import pytest
import torch

from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampling.actions import ActionMap
from metarl.rl.video import (
    control_period,
    episode_frames,
    frame_stride,
    make_render_env,
    record_video,
    side_by_side,
)

CHEETAH = "metarl/HalfCheetahVel-v0"


def test_frame_stride_plays_in_real_time():
    assert frame_stride(0.01) == (2, 50.0)  # rllab's cheetah timing: 100 Hz -> every 2nd, 50 fps
    assert frame_stride(0.05) == (1, 20.0)  # v5's: 20 Hz, every step
    stride, fps = frame_stride(0.008)
    assert stride * 0.008 * fps == pytest.approx(1.0) and fps <= 50


def test_side_by_side_holds_the_last_frame_of_a_short_episode():
    a = [np.full((4, 6, 3), i, dtype=np.uint8) for i in range(3)]
    b = [np.full((4, 6, 3), 100 + i, dtype=np.uint8) for i in range(5)]
    out = side_by_side([a, b], ["", ""])
    assert len(out) == 5 and out[0].shape == (4, 12, 3)
    assert (out[4][:, :6] == 2).all() and (out[4][:, 6:] == 104).all()


@pytest.fixture
def cheetah_env(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
    env = make_render_env(CHEETAH, {"width": 96, "height": 64}, horizon=60)
    try:
        env.reset(seed=0)
        env.render()
    except Exception as e:  # no OpenGL on this machine
        env.close()
        pytest.skip(f"MuJoCo cannot render here (MUJOCO_GL=egl): {type(e).__name__}: {e}")
    yield env
    env.close()


def test_the_camera_follows_the_cheetah(cheetah_env):
    """The tracking camera looks at the torso wherever it is, so the agent stays in the frame
    (Gymnasium's default camera is fixed in the world)."""
    policy = GaussianMLPPolicy(17, 6, (8,), "tanh", 0.0, torch.Generator().manual_seed(0))
    params = {k: v.detach().clone() for k, v in policy.named_parameters()}
    params["layers.1.bias"] = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])  # strong torques
    frames = episode_frames(
        cheetah_env, policy, params, {"velocity": 1.0}, 0, ActionMap(), stride=2
    )
    assert len(frames) == 1 + 60 // 2 and frames[0].shape == (64, 96, 3)
    env = cheetah_env.unwrapped
    cam = env.mujoco_renderer._get_viewer("rgb_array").cam
    # MuJoCo's tracking camera looks at the centre of mass of the tracked body's subtree
    assert cam.lookat[0] == pytest.approx(env.data.subtree_com[1][0], abs=1e-6)
    # slide the cheetah 3 m forward: the next frame looks at it there
    env.data.qpos[0] += 3.0
    mujoco.mj_forward(env.model, env.data)
    env.render()
    assert env.data.subtree_com[1][0] > 2.5
    assert cam.lookat[0] == pytest.approx(env.data.subtree_com[1][0], abs=1e-6)


@pytest.mark.parametrize(
    "env_id, period",
    [
        ("metarl/CartPoleDynamics-v0", 0.02),  # Gymnasium's tau
        ("metarl/PendulumDynamics-v0", 0.05),  # Gymnasium's dt
        (CHEETAH, 0.01),  # one MuJoCo step of 0.01 s per action (rllab's timing)
    ],
)
def test_control_period_gives_each_family_its_real_time(env_id, period):
    env = gymnasium.make(env_id)
    assert control_period(env) == pytest.approx(period)
    env.close()


def test_classic_control_video_without_pygame_names_the_extra(monkeypatch):
    """Gymnasium draws classic control with pygame; without it the error says what to install."""
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    def no_pygame(self):
        raise gymnasium.error.DependencyNotInstalled("pygame is not installed")

    monkeypatch.setattr(PendulumEnv, "render", no_pygame)
    policy = GaussianMLPPolicy(3, 1, (8,), "tanh", generator=torch.Generator().manual_seed(0))
    params = dict(policy.named_parameters())
    task = {"mass": 1.0, "length": 1.0, "gravity": 9.8}
    with pytest.raises(ImportError, match="pygame"):
        record_video(
            "metarl/PendulumDynamics-v0",
            {},
            20,
            policy,
            [params],
            ["x"],
            task,
            0,
            ActionMap(),
            Path("unused.gif"),
        )
