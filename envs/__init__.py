"""metarl task-distribution environments (numpy, Gymnasium, MuJoCo; never imports metarl).

Importing ``envs`` registers every family as ``metarl/<Name>-v0``.

Single env (an ordinary Gymnasium env; without a task set it samples one per reset)::

    import envs, gymnasium, numpy as np
    env = gymnasium.make("metarl/HalfCheetahVel-v0")
    tasks = env.unwrapped.sample_tasks(40, np.random.default_rng(0))  # [{"velocity": 1.27}, ...]
    env.unwrapped.set_task(tasks[0])          # or env.reset(options={"task": tasks[0]})
    obs, info = env.reset(seed=0)             # info["task"] is the current task
    env.unwrapped.get_task()

Batched fast path (one task per copy, NEXT_STEP autoreset, time limit = family horizon)::

    venv = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=800,
                              vectorization_mode="vector_entry_point")
    venv.set_tasks(tasks_repeated)            # len == num_envs; also venv.call("set_task", t)
    obs, info = venv.reset(seed=0)            # or reset(options={"tasks": [...]})
    for t in range(200):                      # horizon
        obs, rew, term, trunc, info = venv.step(actions)   # (num_envs, act_dim) float32/64
        # info["sim_unstable"]: per-copy bool; mask copies after their first termination
    venv.get_tasks()

Exact initial states (to replay a single env's trajectory): MuJoCo families accept
``reset(options={"qpos": (num_envs, nq), "qvel": (num_envs, nv)})`` (single env: 1-d arrays);
Navigation2D ``options={"positions": (num_envs, 2)}`` (single env: ``"position"``).

Plain Gymnasium vectorisation also works::

    venv = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(id)] * 4)
    venv.call("set_task", {"velocity": 1.0})   # same task for all; or set it in each env_fn

Wrappers (:mod:`envs.wrappers`) over any of these envs, each usable on its own (e.g. in SB3)::

    oracle = envs.TaskInObservation(gymnasium.make(id))   # task parameters appended to the obs
    rl2 = envs.RL2Trial(gymnasium.make(id), episodes_per_trial=2)  # RL² trials of one task

Family table: :func:`envs.registry.describe_families`.
"""

from envs.registry import describe_families, register_all, registered_ids
from envs.wrappers import RL2Trial, TaskInObservation

register_all()

__all__ = [
    "RL2Trial",
    "TaskInObservation",
    "describe_families",
    "register_all",
    "registered_ids",
]
