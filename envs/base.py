"""Task API shared by every metarl environment family.

A *task* is a small JSON-able dict (plain Python floats, ints and nested lists), e.g.
``{"velocity": 1.3}``. Every family declares its task parameters as :class:`TaskParam` rows with
two ranges:

* the **sampling range** (``low``/``high`` or ``choices``): the training distribution that
  :meth:`TaskEnvMixin.sample_tasks` draws from (the MAML paper's ranges for its families);
* the **valid range** (``valid_low``/``valid_high``): what :meth:`TaskEnvMixin.set_task` accepts.
  It is wider, so out-of-distribution variants (``velocity=2.5`` for a [0, 2] training range) can
  be used for adaptation; only nonsense (unknown key, wrong type or shape, NaN/inf, a value
  outside the hard validity range such as a negative mass) raises ``ValueError``.

:meth:`TaskEnvMixin.complete_task` makes a whole task from some of its parameters (the others
take their ``nominal`` value, the unmodified env's; a number fills a vector parameter), which is
how ``metarl adapt --task gravity=30`` names a dynamics variant.

Without a task set by :meth:`set_task` (or ``reset(options={"task": ...})``), an environment draws
a fresh task from its own ``np_random`` at each reset, so it is an ordinary MDP.

Version history: v0, first version.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class TaskParam:
    """One task parameter of a family.

    ``shape`` is ``()`` for a scalar, a tuple for a fixed-size vector, or ``None`` when the size
    depends on the instance (then the env's :meth:`TaskEnvMixin.task_shapes` gives it).
    ``choices`` (if set) replaces uniform sampling in [low, high].
    """

    name: str
    low: float
    high: float
    valid_low: float = -math.inf
    valid_high: float = math.inf
    shape: tuple[int, ...] | None = ()
    choices: tuple[float, ...] | None = None
    integer: bool = False
    doc: str = ""
    #: the value of the unmodified env (dynamics families), which :meth:`TaskEnvMixin.complete_task`
    #: fills in for a parameter left out; None where there is none (goals, velocities)
    nominal: float | None = None

    def describe(self) -> str:
        """Short text for tables: sampling range and valid range."""
        samp = (
            f"{{{', '.join(f'{c:g}' for c in self.choices)}}}"
            if self.choices
            else (f"U[{self.low:g}, {self.high:g}]")
        )
        shape = (
            "" if self.shape == () else ("[...]" if self.shape is None else f"{list(self.shape)}")
        )
        return f"{self.name}{shape} ~ {samp} (valid [{self.valid_low:g}, {self.valid_high:g}])"


def _to_python(x: Any) -> Any:
    """Numpy arrays/scalars -> plain Python floats/ints/lists."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        return [_to_python(v) for v in x]
    return x


class TaskEnvMixin:
    """Mixin giving the task API. Put it *before* the Gymnasium base class.

    Class-level metadata used by the CLI table (:func:`envs.registry.describe_families`):
    ``task_kind`` ("goal" or "dynamics"), ``task_params`` (tuple of :class:`TaskParam`),
    ``horizon`` (the registered ``max_episode_steps``).

    Subclasses implement :meth:`_apply_task` (push the task into the simulator/reward) and call
    :meth:`_prepare_reset` at the start of ``reset``.
    """

    task_kind: ClassVar[str] = "goal"
    task_params: ClassVar[tuple[TaskParam, ...]] = ()
    horizon: ClassVar[int] = 100

    _task: dict | None = None
    _task_fixed: bool = False

    # ------------------------------------------------------------------ shapes and sampling
    def task_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each task parameter for this instance."""
        out = {}
        for p in self.task_params:
            if p.shape is None:
                raise NotImplementedError(f"{type(self).__name__} must define task_shapes()")
            out[p.name] = p.shape
        return out

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[dict]:
        """Draw ``n`` tasks from the training distribution with ``rng`` (default ``np_random``)."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        rng = self.np_random if rng is None else rng
        return [self._sample_task(rng) for _ in range(int(n))]

    def _sample_task(self, rng: np.random.Generator) -> dict:
        shapes = self.task_shapes()
        task = {}
        for p in self.task_params:
            size = shapes[p.name] or None
            if p.choices is not None:
                v = rng.choice(np.asarray(p.choices, dtype=float), size=size)
            elif p.integer:
                v = rng.integers(int(p.low), int(p.high) + 1, size=size)
            else:
                v = rng.uniform(p.low, p.high, size=size)
            task[p.name] = _to_python(v)
        return task

    # ------------------------------------------------------------------ validation
    def _valid_text(self) -> str:
        shapes = self.task_shapes()
        rows = []
        for p in self.task_params:
            shape = "" if shapes[p.name] == () else f" shape {list(shapes[p.name])}"
            rows.append(f"{p.name!r}{shape} in [{p.valid_low:g}, {p.valid_high:g}]")
        return "; ".join(rows)

    def validate_task(self, task: Any) -> dict:
        """Return a normalised copy of ``task`` or raise ``ValueError`` naming valid keys/ranges."""
        name = type(self).__name__
        if not isinstance(task, dict):
            raise ValueError(
                f"{name}: a task is a dict, got {type(task).__name__}; valid: {self._valid_text()}"
            )
        keys = [p.name for p in self.task_params]
        unknown = sorted(set(task) - set(keys))
        missing = [k for k in keys if k not in task]
        if unknown or missing:
            raise ValueError(
                f"{name}: unknown task keys {unknown}, missing {missing}; "
                f"valid keys: {self._valid_text()}"
            )
        shapes = self.task_shapes()
        out = {}
        for p in self.task_params:
            out[p.name] = self._validate_value(p, task[p.name], shapes[p.name])
        self._validate_extra(out)
        return out

    def _validate_value(self, p: TaskParam, value: Any, shape: tuple[int, ...]) -> Any:
        name = type(self).__name__
        rng_txt = f"valid range [{p.valid_low:g}, {p.valid_high:g}], training range " + (
            f"{list(p.choices)}" if p.choices else f"[{p.low:g}, {p.high:g}]"
        )

        def bad(why: str) -> ValueError:
            return ValueError(
                f"{name}: task[{p.name!r}] {why}; expected shape {list(shape)}, {rng_txt}"
            )

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
                v, (bool, np.bool_)
            )

        if shape == ():
            if not is_num(value):
                raise bad(f"must be a number, got {type(value).__name__} {value!r}")
            arr = np.asarray(value, dtype=float)
        else:
            if isinstance(value, np.ndarray):
                value = value.tolist()
            if not isinstance(value, (list, tuple)):
                raise bad(f"must be a list, got {type(value).__name__}")
            try:
                arr = np.asarray(value, dtype=object)
            except ValueError as e:  # ragged
                raise bad("is ragged") from e
            if arr.shape != tuple(shape):
                raise bad(f"has shape {list(arr.shape)}")
            if not all(is_num(v) for v in arr.ravel()):
                raise bad("must hold numbers only")
            arr = arr.astype(float)
        if not np.all(np.isfinite(arr)):
            raise bad("must be finite")
        if np.any(arr < p.valid_low) or np.any(arr > p.valid_high):
            raise bad(f"is out of range ({value!r})")
        if p.integer and np.any(arr != np.round(arr)):
            raise bad("must be integer")
        if p.integer:
            return _to_python(arr.astype(int)) if shape != () else int(arr)
        return _to_python(arr) if shape != () else float(arr)

    def _validate_extra(self, task: dict) -> None:
        """Hook for cross-field checks (e.g. rows of a transition matrix sum to 1)."""

    def complete_task(self, partial: dict) -> dict:
        """A whole task from some of its parameters: each parameter left out takes its
        ``nominal`` value (the unmodified env), and a number given for a vector parameter
        applies to every element (``{"body_mass": 1.0}``: every body 1.5x heavier in the
        random-parameter families). Raises ``ValueError`` naming a left-out parameter that has
        no nominal value; the result still goes through :meth:`validate_task`."""
        if not isinstance(partial, dict):
            return partial  # validate_task names the problem
        shapes = self.task_shapes()
        task = dict(partial)
        for p in self.task_params:
            shape = shapes[p.name]
            if p.name not in task:
                if p.nominal is None:
                    raise ValueError(
                        f"{type(self).__name__}: task parameter {p.name!r} has no default; give "
                        f"it (valid keys: {self._valid_text()})"
                    )
                task[p.name] = p.nominal
            value = task[p.name]
            if shape != () and isinstance(value, (int, float)) and not isinstance(value, bool):
                task[p.name] = _to_python(np.full(shape, float(value)))
        return self.validate_task(task)

    # ------------------------------------------------------------------ set / get
    def set_task(self, task: dict) -> None:
        """Fix the task until the next ``set_task``; resets keep it."""
        self._task = self.validate_task(task)
        self._task_fixed = True
        self._apply_task(self._task)

    def get_task(self) -> dict | None:
        """The current task (a copy), or None before the first reset/set_task."""
        return None if self._task is None else _copy_task(self._task)

    def _apply_task(self, task: dict) -> None:
        """Push ``task`` into the simulator or reward; called on every task change."""

    def _prepare_reset(self, seed: int | None, options: dict | None) -> None:
        """Seed ``np_random`` and pick the episode's task (options["task"] or a fresh sample)."""
        if seed is not None:
            import gymnasium

            gymnasium.Env.reset(self, seed=seed)  # seeds np_random only
        if options and options.get("task") is not None:
            self.set_task(options["task"])
        elif not self._task_fixed:
            self._task = self._sample_task(self.np_random)
            self._apply_task(self._task)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = super().__getstate__()  # EzPickle (MuJoCo/classic envs) or object
        if isinstance(state, dict) and "_ezpickle_args" in state:
            state = dict(state)
            state["_metarl_task"] = (self._task, self._task_fixed)
        return state

    def __setstate__(self, state):
        if isinstance(state, dict) and "_metarl_task" in state:
            state = dict(state)
            task, fixed = state.pop("_metarl_task")
            super().__setstate__(state)
            if fixed and task is not None:
                self.set_task(task)
            return
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:  # pragma: no cover
            self.__dict__.update(state)


def _copy_task(task: dict) -> dict:
    return copy.deepcopy(task)


def stack_task_values(tasks: Sequence[dict], key: str) -> np.ndarray:
    """``np.asarray([t[key] for t in tasks], float)``: per-copy task arrays for vector envs."""
    return np.asarray([t[key] for t in tasks], dtype=np.float64)
