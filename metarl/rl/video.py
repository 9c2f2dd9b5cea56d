"""Videos of policies on one task (``metarl adapt --video``), in real time, camera on the agent.

Each policy (a parameter dict, e.g. before and after adaptation) runs one episode of its mean
action on the same task from the same reset seed; their frames are put side by side, each
panel labelled. The action reaches the env as the sampler's would (``ActionMap``: rescaling,
action scale, clipping). MuJoCo families get a camera that tracks the agent's root body (body
1: the torso of HalfCheetah, Ant, Hopper, Walker2d), so a running agent stays in the frame.
The video plays in real time: every ``stride``-th step is kept so that the frame rate,
``1 / (dt * stride)`` with ``dt`` the env's control period, is at most :data:`MAX_FPS`.

Needs the video extra (``pip install 'metarl[video]'``: imageio, and pygame, which draws the
classic-control families off-screen) and an env with ``rgb_array`` rendering (headless machines:
``MUJOCO_GL=egl`` for the MuJoCo families).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import gymnasium
import numpy as np
import torch

from metarl.core import Params

from .policies import Policy
from .sampling.actions import ActionMap

MAX_FPS = 50
#: a camera tracking body 1, a little above the ground (``type``: ``mjCAMERA_TRACKING``)
TRACKING_CAMERA = {"trackbodyid": 1, "distance": 4.0, "elevation": -15.0}


def frame_stride(dt: float, max_fps: int = MAX_FPS) -> tuple[int, float]:
    """``(stride, fps)``: keep every ``stride``-th step and play at ``fps`` = real time."""
    stride = max(1, math.ceil(1.0 / (dt * max_fps)))
    return stride, 1.0 / (dt * stride)


def control_period(env: gymnasium.Env) -> float:
    """Seconds of simulated time per env step: ``dt`` (MuJoCo, Pendulum), CartPole's ``tau``,
    else one frame of the env's ``render_fps``."""
    base = env.unwrapped
    for name in ("dt", "tau"):
        value = getattr(base, name, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return 1.0 / float(env.metadata.get("render_fps") or 30)


def make_render_env(env_id: str, env_kwargs: dict, horizon: int) -> gymnasium.Env:
    """The env rendering ``rgb_array`` frames, with the tracking camera on MuJoCo families."""
    # classic control draws on an off-screen pygame surface: no window or display needed
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gymnasium.make(env_id, render_mode="rgb_array", max_episode_steps=horizon, **env_kwargs)
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    if renderer is not None:
        import mujoco

        renderer.default_cam_config = {
            "type": mujoco.mjtCamera.mjCAMERA_TRACKING,
            **TRACKING_CAMERA,
        }
        # camera_id -1 would make every render switch the camera back to a free one
        renderer.camera_id = None
    return env


def episode_frames(
    env: gymnasium.Env,
    policy: Policy,
    params: Params,
    task: dict,
    seed: int,
    action_map: ActionMap,
    stride: int,
) -> list[np.ndarray]:
    """Every ``stride``-th frame of one episode of ``params``' mean action on ``task``."""
    env.unwrapped.set_task(task)
    obs, _ = env.reset(seed=seed)
    frames, t, done = [env.render()], 0, False
    space = env.action_space
    while not done:
        with torch.no_grad():
            dist = policy.dist(params, torch.as_tensor(obs, dtype=torch.float32))
        if policy.discrete:
            action = dist[0].argmax(-1).numpy()
        else:
            action = action_map.to_env(dist[0].numpy().astype(np.float64), space.low, space.high)
            action = action.astype(space.dtype)
        obs, _, terminated, truncated, _ = env.step(action)
        t += 1
        done = terminated or truncated
        if t % stride == 0 or done:
            frames.append(env.render())
    return frames


def side_by_side(panels: Sequence[list[np.ndarray]], labels: Sequence[str]) -> list[np.ndarray]:
    """One frame per time: the panels' frames next to each other, each labelled; a panel whose
    episode ended early holds its last frame."""
    from PIL import Image, ImageDraw

    length = max(len(p) for p in panels)
    out = []
    for i in range(length):
        row = []
        for frames, label in zip(panels, labels):
            image = Image.fromarray(frames[min(i, len(frames) - 1)])
            if label:
                ImageDraw.Draw(image).text((8, 8), label, fill=(0, 0, 0))
            row.append(np.asarray(image))
        out.append(np.concatenate(row, axis=1))
    return out


def record_video(
    env_id: str,
    env_kwargs: dict,
    horizon: int,
    policy: Policy,
    params: Sequence[Params],
    labels: Sequence[str],
    task: dict,
    seed: int,
    action_map: ActionMap,
    path: Path,
) -> Path:
    """Write the episodes of ``params`` on ``task``, side by side, to ``path`` (mp4 or gif)."""
    try:
        import imageio.v2 as imageio
    except ImportError as e:
        raise ImportError("recording videos needs imageio: pip install 'metarl[video]'") from e
    env = make_render_env(env_id, env_kwargs, horizon)
    try:
        stride, fps = frame_stride(control_period(env))
        panels = [episode_frames(env, policy, p, task, seed, action_map, stride) for p in params]
    except gymnasium.error.DependencyNotInstalled as e:  # pygame for classic control
        raise ImportError(str(e)) from e
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        imageio.mimsave(path, side_by_side(panels, labels), fps=fps)
    except ValueError as e:  # no imageio plugin writes this format (mp4 needs imageio-ffmpeg)
        raise ImportError(
            f"imageio has no writer for {path.suffix or 'extension-less'} files here (mp4 needs "
            "imageio-ffmpeg); or write a .gif"
        ) from e
    return path
